"""Layer-by-layer divergence report: the same weights and clip through two or more backends.

    python -m convert.compare --arch resnet18 --backends torch paddle [--weights FILE] [--input-size T H W]
                              [--tolerance 1e-4] [--widen-factor 0.25] [--n-classes 5]

Each backend runs in its own process and records the output of every named layer (torch forward hooks,
Paddle forward post-hooks, MindSpore Cell forward hooks in PyNative mode) in execution order; a layer
called several times (a shared ReLU) appears as name, name#2, ... The first backend is the reference:
the table lists every layer both backends have, with max |ref| and the max absolute and relative
differences, and marks the first layer whose difference exceeds tolerance * max(1, max |ref|); then it
counts and names the layers only one backend recorded. The exit status is 1 when any layer is over
tolerance or has no counterpart, so the command can gate a port. Without --weights the model gets seeded
random weights (BatchNorm statistics included) from the architecture's shapes.
"""
import argparse
import json
import os
import pickle
import subprocess
import sys
import tempfile
from dataclasses import dataclass

import numpy as np
from tqdm import tqdm

from backends import BACKENDS, load
from core.archs import ARCHS, expected_shapes

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BROKEN_EPSILON = 1e-2  # what --break adds to a BatchNorm's running variance: the same as a larger epsilon


def random_state(arch, seed=0, **model_kwargs):
    """Seeded random neutral weights of `arch`: normal convs (std 1 / sqrt(fan in)), BatchNorms with
    non-trivial statistics."""
    rng = np.random.default_rng(seed)
    shapes = expected_shapes(arch, **model_kwargs)
    norms = {name.rsplit(".", 1)[0] for name in shapes if name.endswith(".running_var")}
    state = {}
    for name, shape in shapes.items():
        module, leaf = name.rsplit(".", 1)
        if module in norms:
            value = {"weight": lambda: rng.uniform(0.5, 1.5, shape), "bias": lambda: rng.normal(0, 0.1, shape),
                     "running_mean": lambda: rng.normal(0, 0.1, shape),
                     "running_var": lambda: rng.uniform(0.5, 1.5, shape)}[leaf]()
        elif leaf == "weight":
            # Gain 1, not He's 2: residual stages then grow slowly, and ResNet-200's logits stay near 1e2.
            value = rng.normal(0, 1 / np.sqrt(np.prod(shape[1:])), shape)
        else:
            value = rng.normal(0, 0.1, shape)
        state[name] = value.astype(np.float32)
    return state


def break_layer(state, layer):
    """A copy of `state` with one layer off: a BatchNorm as if its epsilon were BROKEN_EPSILON larger,
    any other layer with its weights x 1.01."""
    state = dict(state)
    if f"{layer}.running_var" in state:
        state[f"{layer}.running_var"] = state[f"{layer}.running_var"] + np.float32(BROKEN_EPSILON)
    elif f"{layer}.weight" in state:
        state[f"{layer}.weight"] = state[f"{layer}.weight"] * np.float32(1.01)
    else:
        raise ValueError(f"--break {layer}: no parameters named {layer}.weight or {layer}.running_var")
    return state


# ---- worker side: one backend, one process ----

def _recorder(outputs, name):
    calls = [0]

    def record(output):
        calls[0] += 1
        outputs.append((name if calls[0] == 1 else f"{name}#{calls[0]}", output))

    return record


def capture_layers(backend, arch, model_kwargs, state, clip):
    """[(layer name, output array)] in execution order, then ('output', logits)."""
    interop = load(backend, "interop")
    model = load(backend, "models").build_model(arch, **model_kwargs)
    interop.load_numpy_state(model, state)
    outputs = []
    logits = interop.capture_layers(model, clip, lambda name: _recorder(outputs, name))
    # The model's own output too: the last layer recorded may not be it (I3D averages after its logits conv).
    return outputs + [("output", logits)]


def _worker(args):
    with np.load(args.weights) as data:
        state = {name: data[name] for name in data.files}
    outputs = capture_layers(args.worker, args.arch, json.loads(args.model_kwargs), state, np.load(args.input))
    # Positions keep the order: npz archives do not promise one.
    np.savez(args.output, **{f"{index:05d} {name}": value for index, (name, value) in enumerate(outputs)})


# ---- parent side ----

@dataclass
class LayerDiff:
    name: str
    shape: tuple
    max_ref: float
    max_abs: float  # max |ref - other|; inf when the shapes differ
    max_rel: float  # max_abs / max |ref|
    passed: bool


def run_capture(backend, arch, model_kwargs, state, clip, work_dir):
    """capture_layers() of `backend` in a fresh process; returns [(name, array)]."""
    weights_path = os.path.join(work_dir, f"weights_{backend}.npz")
    input_path, output_path = os.path.join(work_dir, "input.npy"), os.path.join(work_dir, f"layers_{backend}.npz")
    np.savez(weights_path, **state)
    np.save(input_path, clip)
    command = [sys.executable, "-m", "convert.compare", "--worker", backend, "--arch", arch,
               "--model-kwargs", json.dumps(model_kwargs), "--weights", weights_path, "--input", input_path,
               "--output", output_path]
    result = subprocess.run(command, cwd=ROOT, capture_output=True, text=True)
    if result.returncode != 0:
        raise RuntimeError(f"{arch} on {backend} failed:\n{result.stderr[-3000:]}")
    with np.load(output_path) as data:
        return [(key.split(" ", 1)[1], data[key]) for key in sorted(data.files)]


@dataclass
class Comparison:
    rows: list  # LayerDiff of each layer both backends recorded, in the reference's order
    only_reference: list  # names of the layers only the reference recorded
    only_other: list

    @property
    def passed(self):
        return all(r.passed for r in self.rows) and not self.only_reference and not self.only_other


def compare_layers(reference, other, tolerance):
    """Comparison of the layers of `reference` with those `other` recorded, matched by name."""
    others = dict(other)
    reference_names = {name for name, _ in reference}
    rows = []
    for name, ref in reference:
        if name not in others:
            continue
        value = others[name]
        max_ref = float(np.abs(ref).max()) if ref.size else 0.0
        if value.shape != ref.shape:
            rows.append(LayerDiff(name, ref.shape, max_ref, float("inf"), float("inf"), False))
            continue
        max_abs = float(np.abs(ref.astype(np.float64) - value).max()) if ref.size else 0.0
        rows.append(LayerDiff(name, ref.shape, max_ref, max_abs, max_abs / max_ref if max_ref else max_abs,
                              max_abs <= tolerance * max(1.0, max_ref)))
    return Comparison(rows, [name for name, _ in reference if name not in others],
                      [name for name, _ in other if name not in reference_names])


def _listed(names, limit=10):
    return ", ".join(names[:limit]) + (f", ... ({len(names) - limit} more)" if len(names) > limit else "")


def format_table(reference_name, other_name, comparison, tolerance):
    rows = comparison.rows
    width = max([len(r.name) for r in rows] + [5])
    lines = [f"{reference_name} (reference) vs {other_name}, tolerance {tolerance:g} * max(1, max|ref|)",
             f"{'layer':<{width}}  {'shape':<22} {'max|ref|':>10} {'max abs':>10} {'max rel':>10}"]
    first = next((r for r in rows if not r.passed), None)
    for r in rows:
        mark = "  <-- first divergence" if r is first else ("  over" if not r.passed else "")
        lines.append(f"{r.name:<{width}}  {str(tuple(r.shape)):<22} {r.max_ref:>10.3e} {r.max_abs:>10.3e} "
                     f"{r.max_rel:>10.3e}{mark}")
    unmatched = [(name, names) for name, names in ((reference_name, comparison.only_reference),
                                                   (other_name, comparison.only_other)) if names]
    lines.append(f"unmatched layers: {sum(len(names) for _, names in unmatched)}"
                 + "".join(f"; only in {name}: {_listed(names)}" for name, names in unmatched))
    if first:
        over = sum(not r.passed for r in rows)
        lines.append(f"first layer over tolerance: {first.name} ({over} of {len(rows)} layers over)")
    elif unmatched:
        lines.append(f"all {len(rows)} matched layers within tolerance, but not every layer has a counterpart")
    else:
        lines.append(f"all {len(rows)} layers within tolerance")
    return "\n".join(lines)


def _model_and_state(args):
    extra = json.loads(args.model_kwargs)
    if args.weights:
        from core.checkpoints import read_checkpoint
        try:
            checkpoint = read_checkpoint(args.weights, arch=args.arch)
        except (OSError, ValueError, RuntimeError, pickle.UnpicklingError) as error:  # as `python -m convert`
            raise SystemExit(f"convert.compare: {error}") from None
        return checkpoint.arch, {**checkpoint.model_kwargs, **extra}, checkpoint.state
    if not args.arch:
        raise SystemExit("convert.compare: --arch is needed when no --weights file is given")
    kwargs = {"n_classes": args.n_classes, "widen_factor": args.widen_factor, **extra}
    return args.arch, kwargs, random_state(args.arch, args.seed, **kwargs)


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m convert.compare", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--arch", choices=ARCHS, help="architecture (default: from --weights)")
    parser.add_argument("--backends", nargs="+", choices=BACKENDS, default=list(BACKENDS[:2]),
                        help=f"backends to run; the first is the reference (default: {' '.join(BACKENDS[:2])})")
    parser.add_argument("--weights", help="checkpoint in any format convert reads (default: seeded random weights)")
    parser.add_argument("--input-size", nargs=3, type=int, default=(8, 64, 64), metavar=("T", "H", "W"),
                        help="clip size of the seeded random input (default: 8 64 64)")
    parser.add_argument("--tolerance", type=float, default=1e-4,
                        help="allowed max abs difference, relative to max(1, max|ref|) (default: 1e-4)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the random weights and input")
    parser.add_argument("--n-classes", type=int, default=5, help="classes of the random model (default: 5)")
    parser.add_argument("--widen-factor", type=float, default=0.25, help="width of the random model (default: 0.25)")
    parser.add_argument("--model-kwargs", default="{}",
                        help='extra builder arguments as JSON, e.g. \'{"no_max_pool": true}\'')
    parser.add_argument("--break", dest="break_layer", metavar="LAYER",
                        help="self-check: put one layer off in the last backend (a BatchNorm gets a larger "
                             "epsilon, other layers weights x 1.01); the report must point at it")
    parser.add_argument("--worker", choices=BACKENDS, help=argparse.SUPPRESS)
    parser.add_argument("--input", help=argparse.SUPPRESS)
    parser.add_argument("--output", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker:
        return _worker(args)
    if len(args.backends) < 2:
        parser.error("--backends needs at least two backends")

    arch, model_kwargs, state = _model_and_state(args)
    clip = np.random.default_rng(args.seed).standard_normal(
        (1, model_kwargs.get("n_input_channels", 3), *args.input_size)).astype(np.float32)
    with tempfile.TemporaryDirectory() as work:
        captured = {}
        for backend in tqdm(args.backends, desc=f"{arch}: running backends", unit="backend", leave=False):
            broken = args.break_layer and backend == args.backends[-1]
            captured[backend] = run_capture(backend, arch, model_kwargs,
                                            break_layer(state, args.break_layer) if broken else state, clip, work)
    reference = args.backends[0]
    failed = False
    for other in args.backends[1:]:
        comparison = compare_layers(captured[reference], captured[other], args.tolerance)
        print(format_table(reference, other, comparison, args.tolerance))
        failed |= not comparison.passed
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
