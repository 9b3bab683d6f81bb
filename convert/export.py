"""Export a checkpoint for inference: ONNX, TorchScript, torch.export, Paddle Inference or MindIR.

The target comes from DST's extension:
  .onnx         ONNX (exported from PyTorch, opset 20), run by onnxruntime
  .torchscript  TorchScript (PyTorch), run by torch.jit.load
  .pt2          torch.export ExportedProgram (PyTorch), run by torch.export.load
  .json         Paddle Inference model (paddle.jit.save): DST and DST's .pdiparams, run by paddle.inference
  .mindir       MindIR (mindspore.export), run by mindspore.load + nn.GraphCell (I3D family and S3D: only
                with --batch N)

CHECKPOINT is any file `python -m convert` reads (.pth/.pt, .pdparams, .ckpt, .npz, .safetensors,
community layouts). The clip shape (channels, frames, height, width) comes from --shape, else from
the config (channels from modality: rgb 3, flow 2; sample_duration; sample_size), else the config
defaults (3 x 16 x 112 x 112). The exported model computes the checkpoint's logits for clips of exactly
that shape (I3D's TF-"same" padding depends on it); the batch axis is dynamic unless --batch N.
Exporting runs in the target framework's own process; --verify then runs the exported file in its
runtime (another process) and the checkpoint in its own framework on the same seeded clip, prints the
max absolute and relative difference of the logits and exits 1 when the relative one exceeds
--tolerance.

examples:
  python -m convert.export demo/results/torch/save_16.pth demo/r3d10.onnx --config configs/synthetic.yaml --verify
  python -m convert.export rgb_imagenet.pt i3d.mindir --shape 3 64 224 224 --batch 1 --verify
  python -m convert.export save_16.pdparams deploy/r3d18.json --shape 3 16 112 112
"""
import argparse
import json
import os
import subprocess
import sys
import tempfile

import numpy as np

from backends import export_targets
from convert.verify import Verification, run_model
from core.archs import ARCHS
from core.checkpoints.formats import FORMATS
from core.checkpoints.layouts import LAYOUTS
from core.config import ConfigError, load_config

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# extension -> (backend whose export.py writes it, worker that runs it for --verify)
TARGETS = export_targets()


def target_of(dst):
    """(exporting backend, running worker) for DST's extension."""
    extension = os.path.splitext(dst)[1].lower()
    if extension not in TARGETS:
        raise ValueError(f"{dst}: cannot tell the export target from the extension '{extension}' "
                         f"(known: {', '.join(TARGETS)})")
    return TARGETS[extension]


def run_jobs(backend, jobs, work_dir):
    """Run `jobs` (see convert/run_export.py) in one `backend` worker process; raise with its error line."""
    jobs_path = os.path.join(work_dir, f"jobs_{backend}.json")
    with open(jobs_path, "w") as file:
        json.dump(jobs, file)
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [ROOT, os.environ.get("PYTHONPATH")])))
    # The worker runs in work_dir: MindSpore writes its compile dumps (rank_0/...) into the current directory.
    result = subprocess.run([sys.executable, "-m", "convert.run_export", backend, jobs_path], cwd=work_dir,
                            env=env, capture_output=True, text=True)
    if result.returncode != 0:
        lines = [line for line in result.stderr.splitlines() if line.startswith("error: ")]
        raise RuntimeError(lines[-1][len("error: "):] if lines else f"the {backend} worker failed:\n"
                           + result.stderr[-3000:])


def clip_shape_from(shape=None, config_path=None):
    """(channels, frames, height, width): --shape, else the config's modality / sample_duration / sample_size."""
    if shape:
        if len(shape) != 4 or min(shape) < 1:
            raise ValueError(f"--shape needs four positive sizes C T H W, got {shape}")
        return tuple(shape)
    config = load_config(config_path, require_paths=())
    channels = 2 if config["modality"] == "flow" else 3
    return channels, config["sample_duration"], config["sample_size"], config["sample_size"]


def seeded_clip(clip_shape, batch, seed=0):
    """The --verify clip: standard normal, (batch, *clip_shape). A dynamic batch is checked at 3, not at the
    exporters' example batch (2): a size traced from the example (a reshape to n * frames) then shows."""
    return np.random.default_rng(seed).standard_normal((3 if batch == "dynamic" else batch, *clip_shape)) \
        .astype(np.float32)


def compare(source, target, tolerance):
    """Verification of `target` logits against `source` ones: passes when max |diff| / max |source| <= tolerance."""
    if source.shape != target.shape:
        raise ValueError(f"the exported model gives logits of shape {target.shape}, the checkpoint {source.shape}")
    scale = float(np.abs(source).max())
    max_abs = float(np.abs(source.astype(np.float64) - target).max())
    return Verification(max_abs, max_abs / scale if scale else max_abs, tolerance * scale)


def export(src, dst, clip_shape, batch="dynamic", fmt=None, layout=None, arch=None, verify=False,
           tolerance=1e-4, seed=0):
    """Export `src` to `dst`, each framework in its own process; the Verification when `verify`, else None."""
    exporter, runner = target_of(dst)
    if not os.path.isfile(src):
        raise FileNotFoundError(f"{src}: no such checkpoint")
    src, dst = os.path.abspath(src), os.path.abspath(dst)
    with tempfile.TemporaryDirectory() as work:
        run_jobs(exporter, [dict(export=dst, checkpoint=src, format=fmt, layout=layout, arch=arch,
                                 clip_shape=list(clip_shape), batch=batch)], work)
        if not verify:
            return None
        clip_path = os.path.join(work, "clip.npy")
        np.save(clip_path, seeded_clip(clip_shape, batch, seed))
        exported_path = os.path.join(work, "exported.npy")
        run_jobs(runner, [dict(run=dst, input=clip_path, output=exported_path)], work)
        source = run_model(src, clip_path, os.path.join(work, "source.npy"), fmt, layout, arch)
        return compare(source, np.load(exported_path), tolerance)


def _batch(text):
    if text == "dynamic":
        return text
    if text.isdigit() and int(text) > 0:
        return int(text)
    raise argparse.ArgumentTypeError(f"'dynamic' or a positive number, not '{text}'")


def parse_args(argv=None):
    parser = argparse.ArgumentParser(prog="python -m convert.export", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("src", metavar="CHECKPOINT", help="checkpoint to export (any format convert reads)")
    parser.add_argument("dst", metavar="DST", help=f"exported model; its extension picks the target "
                                                   f"({', '.join(TARGETS)})")
    parser.add_argument("--config", help="YAML config giving the clip shape (modality, sample_duration, sample_size)")
    parser.add_argument("--shape", type=int, nargs=4, metavar=("C", "T", "H", "W"),
                        help="clip shape: channels, frames, height, width (overrides --config)")
    parser.add_argument("--batch", type=_batch, default="dynamic",
                        help="'dynamic' (default: any batch size) or a fixed batch size N")
    parser.add_argument("--from", dest="fmt", choices=sorted(FORMATS), help="format of CHECKPOINT")
    parser.add_argument("--layout", choices=sorted(LAYOUTS), help="layout of CHECKPOINT (default: detected)")
    parser.add_argument("--arch", choices=ARCHS, help="architecture, when neither the file nor its shapes tell")
    parser.add_argument("--verify", action="store_true",
                        help="run DST in its runtime and CHECKPOINT in its framework (a process each) on the same "
                             "seeded clip, print the differences of the logits, exit 1 above --tolerance")
    parser.add_argument("--tolerance", type=float, default=1e-4,
                        help="--verify fails when max |difference| / max |checkpoint logits| > TOLERANCE")
    return parser.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    try:
        clip_shape = clip_shape_from(args.shape, args.config)
        result = export(args.src, args.dst, clip_shape, args.batch, args.fmt, args.layout, args.arch,
                        args.verify, args.tolerance)
    except (ValueError, OSError, RuntimeError, ConfigError) as error:
        sys.exit(f"error: {error}")
    print(f"exported {args.src} -> {args.dst} (clips {' x '.join(map(str, clip_shape))}, batch {args.batch})")
    if result is None:
        return
    print(f"verify: max abs difference {result.max_abs:.3g}, max relative difference {result.max_rel:.3g} "
          f"(tolerance {args.tolerance:g})")
    if not result.passed:
        sys.exit(f"error: {args.dst} does not compute what {args.src} computes")


if __name__ == "__main__":
    main()
