"""The backend registry: the one list of frameworks the project runs on.

A backend is a folder `backends/<name>/` with the same files as the others:
  __init__.py   framework-free facts: NATIVE_FORMAT (its checkpoint format, core.checkpoints.formats) and
                EXPORT_TARGETS (the deployment files its export.py writes)
  engine.py     Engine (core.engine.Engine's primitives for its framework) and build_predictor
  interop.py    numpy <-> framework: tensor, numpy, to_numpy_state, load_numpy_state, forward, capture_layers
  models/       one model file per architecture family of core.archs
  export.py     export(model, clip_shape, dst, batch) and run_exported(path, clip) (convert.export)
  distributed.py, train.py, evaluate.py
Adding a backend is that folder plus its name in BACKENDS (docs/architecture.md).
"""
import importlib

BACKENDS = ("torch", "paddle", "mindspore")


def native_format(name):
    """The checkpoint format backend `name` saves (without importing its framework)."""
    return importlib.import_module(f"backends.{name}").NATIVE_FORMAT


def backend_of_format(format_name):
    """The backend that runs a file of `format_name`: its own framework's, else the first backend."""
    return next((name for name in BACKENDS if native_format(name) == format_name), BACKENDS[0])


def export_targets():
    """{DST extension: (the backend that exports it, the runtime that runs it)} of every backend."""
    return {extension: (name, runtime) for name in BACKENDS
            for extension, runtime in importlib.import_module(f"backends.{name}").EXPORT_TARGETS.items()}


def load(name, part):
    """`backends.<name>.<part>` (engine, interop, models), importing its framework."""
    if name not in BACKENDS:
        raise ValueError(f"unknown backend '{name}' (choose from {', '.join(BACKENDS)})")
    return importlib.import_module(f"backends.{name}.{part}")
