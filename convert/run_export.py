"""Export checkpoints, or run exported models, in one framework's process (a worker of `python -m convert.export`).

    python -m convert.run_export BACKEND JOBS.json

BACKEND is torch, paddle, mindspore, or onnxruntime (runs .onnx files and imports no framework).
JOBS.json is a list of jobs, done in order; a process per backend keeps MindSpore away from torch and
Paddle (DESIGN.md) and shows that an exported file runs without the code that wrote it:
  {"export": DST, "checkpoint": SRC, "format": F|null, "layout": L|null, "arch": A|null,
   "clip_shape": [C, T, H, W], "batch": "dynamic"|N}
  {"run": MODEL, "input": CLIP.npy, "output": LOGITS.npy}
The first job that fails ends the worker with one line on stderr, "error: ...", and exit status 1.
"""
import json
import sys

import numpy as np

from backends import BACKENDS, load

RUNTIMES = (*BACKENDS, "onnxruntime")


def build_with_weights(backend, checkpoint):
    """The backend's model of `checkpoint`'s architecture, holding its weights (the exporter sets eval mode)."""
    model = load(backend, "models").build_model(checkpoint.arch, **checkpoint.model_kwargs)
    load(backend, "interop").load_numpy_state(model, checkpoint.state)
    return model


def _export(backend, job, models):
    """Export one job; `models` keeps each checkpoint's model for the next targets of the same file."""
    from core.checkpoints import read_checkpoint
    source = (job["checkpoint"], job.get("format"), job.get("layout"), job.get("arch"))
    if source not in models:
        checkpoint = read_checkpoint(*source)
        models[source] = checkpoint, build_with_weights(backend, checkpoint)
    checkpoint, model = models[source]
    clip_shape = tuple(job["clip_shape"])
    channels = checkpoint.model_kwargs["n_input_channels"]
    if clip_shape[0] != channels:
        raise ValueError(f"{job['checkpoint']}: the model takes {channels}-channel clips, the clip shape "
                         f"{list(clip_shape)} has {clip_shape[0]} (set --shape, or the config's modality)")
    exporter = load(backend, "export")
    try:
        exporter.export(model, clip_shape, job["export"], job["batch"])
    except Exception as error:  # each framework raises its own types; name the model and the framework
        message = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        raise RuntimeError(f"{job['export']}: {backend} cannot export {checkpoint.arch} at clip shape "
                           f"{list(clip_shape)}, batch {job['batch']}: {type(error).__name__}: {message}") from None


def _run(backend, job):
    clip = np.load(job["input"])
    if backend == "onnxruntime":
        from core.onnx_predictor import build_onnx_predictor
        logits = build_onnx_predictor(job["run"])(clip)
    else:
        logits = load(backend, "export").run_exported(job["run"], clip)
    np.save(job["output"], np.asarray(logits, dtype=np.float32))


def main(argv=None):
    argv = sys.argv[1:] if argv is None else argv
    if argv in (["-h"], ["--help"]):
        print(f"usage: python -m convert.run_export BACKEND JOBS.json\n{__doc__}")
        return
    if len(argv) != 2 or argv[0] not in RUNTIMES:
        sys.exit(f"usage: python -m convert.run_export {{{','.join(RUNTIMES)}}} JOBS.json")
    backend, jobs_path = argv
    with open(jobs_path) as file:
        jobs = json.load(file)
    models = {}
    for job in jobs:
        try:
            _export(backend, job, models) if "export" in job else _run(backend, job)
        except Exception as error:  # one line for the dispatcher, whatever the framework raised
            detail = str(error).strip().splitlines()
            sys.exit(f"error: {detail[0] if detail else type(error).__name__}")


if __name__ == "__main__":
    main()
