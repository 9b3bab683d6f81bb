"""Deployment: CPU throughput of an exported .onnx on onnxruntime vs torch eager, and the install sizes.

    python -m bench.export [--repeats 3] [--batch 4] [--threads N]

For ResNet-18 and I3D (full width, 400 classes, seeded random weights, 3 x 16 x 112 x 112 clips),
the torch model is exported with backends/torch/export.py and run by core.onnx_predictor
(onnxruntime + numpy, what `predict` runs for an .onnx model); both run the same batches, the same
number of threads, interleaved, and must agree within 1e-4 relative (asserted). Reported: median
clips/s of each and the ratio onnxruntime / torch.

Install sizes are those pip installed in this environment (the sizes of the files each
distribution's RECORD lists), for the distributions each path needs: onnxruntime + numpy + av
(and onnxruntime's own requirements) against torch + numpy + av (and torch's requirements).
"""
import argparse
import os
import re
import tempfile
import time
from importlib import metadata

import numpy as np

from bench.common import median_rate, write_result

ARCHS = {"resnet18": {}, "i3d": {}}
CLIP_SHAPE = (3, 16, 112, 112)
N_CLASSES = 400


def _requirements(name, seen):
    """`name` and every distribution it requires (no extras), as installed here."""
    key = re.sub(r"[-_.]+", "-", name).lower()
    if key in seen:
        return seen
    try:
        distribution = metadata.distribution(name)
    except metadata.PackageNotFoundError:
        return seen
    seen[key] = distribution
    for requirement in distribution.requires or []:
        if "extra ==" in requirement:
            continue
        _requirements(re.split(r"[\s;<>=!~\[(]", requirement, maxsplit=1)[0], seen)
    return seen


def install_size_mb(*names):
    """({distribution: MB}, total MB) of `names` and their requirements, from the files pip recorded."""
    found = {}
    for name in names:
        _requirements(name, found)
    sizes = {key: sum(f.size or 0 for f in dist.files or []) / 2 ** 20 for key, dist in found.items()}
    return {key: round(size, 1) for key, size in sorted(sizes.items())}, round(sum(sizes.values()), 1)


def throughput(arch, batch, repeats, threads, work_dir):
    import torch
    from backends.torch import export as torch_export
    from convert.compare import random_state
    from core.onnx_predictor import build_onnx_predictor
    from backends.torch.models import build_model
    from backends.torch.interop import load_numpy_state

    torch.set_num_threads(threads)
    model = build_model(arch, n_classes=N_CLASSES)
    load_numpy_state(model, random_state(arch, n_classes=N_CLASSES))
    model.eval()
    path = os.path.join(work_dir, f"{arch}.onnx")
    torch_export.export(model, CLIP_SHAPE, path, "dynamic")
    predict = build_onnx_predictor(path, threads=threads)
    clips = np.random.default_rng(0).standard_normal((batch, *CLIP_SHAPE)).astype(np.float32)

    def eager():
        with torch.no_grad():
            return model(torch.from_numpy(clips)).numpy()

    reference, exported = eager(), predict(clips)  # also warms both up
    relative = float(np.abs(reference - exported).max() / np.abs(reference).max())
    assert relative < 1e-4, f"{arch}: onnxruntime is {relative:.3g} off torch"
    seconds = {"torch": [], "onnxruntime": []}
    for _ in range(repeats):
        for name, run in (("torch", eager), ("onnxruntime", lambda: predict(clips))):
            start = time.perf_counter()
            run()
            seconds[name].append(time.perf_counter() - start)
    rates = {name: median_rate(s, batch) for name, s in seconds.items()}
    return {"clips_per_s": rates, "ratio_onnxruntime_over_torch": round(rates["onnxruntime"]["median"]
                                                                        / rates["torch"]["median"], 2),
            "max_relative_difference": relative}


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m bench.export", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--batch", type=int, default=4, help="clips per run")
    parser.add_argument("--threads", type=int, default=os.cpu_count(), help="threads of torch and onnxruntime")
    args = parser.parse_args(argv)
    onnx_sizes, onnx_total = install_size_mb("onnxruntime", "numpy", "av")
    torch_sizes, torch_total = install_size_mb("torch", "numpy", "av")
    with tempfile.TemporaryDirectory() as work:
        results = {arch: throughput(arch, args.batch, args.repeats, args.threads, work) for arch in ARCHS}
    write_result("export", {
        "clip_shape": list(CLIP_SHAPE), "batch": args.batch, "threads": args.threads, "models": results,
        "install_mb": {"onnxruntime_numpy_av": {"total": onnx_total, "distributions": onnx_sizes},
                       "torch_numpy_av": {"total": torch_total, "distributions": torch_sizes}}})


if __name__ == "__main__":
    main()
