"""Every registered architecture to every export target, verified; prints the README's table (not run by pytest).

    python -m tests.export_matrix [--archs resnet10 i3d ...] [--widen-factor 0.125]

Each architecture gets seeded random weights (a neutral .npz, run on torch as the reference) and is
exported by one worker per framework and run by one worker per runtime, like `python -m
convert.export --verify`; a cell is the max relative difference of the logits, or the error.
I3D runs at an odd clip (9 x 33 x 37), the ResNets at 8 x 32 x 32; MindIR I3D with a fixed batch.
"""
import argparse
import os
import tempfile

import numpy as np

from convert import Checkpoint, write_checkpoint
from convert.compare import random_state
from convert.export import TARGETS, compare, run_jobs, seeded_clip
from convert.verify import run_model
from core.archs import ARCHS, get
from tests.community import narrow

N_CLIPS = 3  # one more than the exporters' example batch: a batch size baked into a file shows


def clip_shape_of(arch):
    """Odd sizes for the TF-"same" padding of the I3D family; frames enough for a DenseNet (4 halvings)."""
    if get(arch).family == "i3d":
        return (3, 9, 33, 37)
    return (3, 16 if get(arch).model == "densenet" else 8, 32, 32)


def verify_arch(arch, widen_factor, work):
    """{extension: max relative difference or error text} for `arch`."""
    source = os.path.join(work, f"{arch}.npz")
    kwargs = narrow(arch, widen_factor)
    write_checkpoint(source, Checkpoint(random_state(arch, n_classes=5, **kwargs), arch, {}))
    clip_shape = clip_shape_of(arch)
    clip_path = os.path.join(work, f"{arch}_clip.npy")
    np.save(clip_path, seeded_clip(clip_shape, N_CLIPS))
    reference = run_model(source, clip_path, os.path.join(work, f"{arch}_source.npy"))
    cells = {}
    for exporter in dict.fromkeys(backend for backend, _ in TARGETS.values()):
        extensions = [extension for extension, (backend, _) in TARGETS.items() if backend == exporter]
        # MindSpore exports sizes computed from the input (I3D's padding, S3D's head pool) only with a fixed batch.
        batch = N_CLIPS if exporter == "mindspore" and get(arch).family in ("i3d", "s3d") else "dynamic"
        jobs = [dict(export=os.path.join(work, arch + extension), checkpoint=source, clip_shape=list(clip_shape),
                     batch=batch) for extension in extensions]
        try:
            run_jobs(exporter, jobs, work)
        except RuntimeError as error:
            cells.update({extension: f"export failed: {error}" for extension in extensions})
    for extension, (_, runner) in TARGETS.items():
        if extension in cells:
            continue
        output = os.path.join(work, f"{arch}{extension}.npy")
        try:
            run_jobs(runner, [dict(run=os.path.join(work, arch + extension), input=clip_path, output=output)], work)
            cells[extension] = compare(reference, np.load(output), 1e-4).max_rel
        except (RuntimeError, ValueError) as error:
            cells[extension] = f"run failed: {error}"
    return cells


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m tests.export_matrix", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--archs", nargs="+", choices=ARCHS, default=list(ARCHS))
    parser.add_argument("--widen-factor", type=float, default=0.125)
    args = parser.parse_args(argv)
    print("| architecture | " + " | ".join(f"`{extension}`" for extension in TARGETS) + " |")
    print("|---" * (len(TARGETS) + 1) + "|")
    with tempfile.TemporaryDirectory() as work:
        for arch in args.archs:
            cells = verify_arch(arch, args.widen_factor, work)
            print(f"| {arch} | " + " | ".join(f"{cell:.1e}" if isinstance(cell, float) else cell
                                               for cell in (cells[extension] for extension in TARGETS)) + " |",
                  flush=True)


if __name__ == "__main__":
    main()
