"""Check a conversion by running both files, each in its own framework and process, on the same clip."""
import os
import subprocess
import sys
import tempfile
from dataclasses import dataclass

import numpy as np

from backends import backend_of_format
from core.checkpoints.formats import format_of

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@dataclass
class Verification:
    max_abs: float  # max |source logits - target logits|
    max_rel: float  # max_abs / max |source logits|
    threshold: float  # tolerance * max(1, max |source logits|)

    @property
    def passed(self):
        return self.max_abs <= self.threshold


def run_model(path, clip_path, logits_path, fmt=None, layout=None, arch=None):
    """Logits of checkpoint `path` on the clip saved at `clip_path`, computed by a separate process."""
    backend = backend_of_format(format_of(path, fmt).name)
    command = [sys.executable, "-m", "convert.run_model", "--backend", backend, "--weights", os.path.abspath(path),
               "--input", clip_path, "--output", logits_path]
    for option, value in (("--format", fmt), ("--layout", layout), ("--arch", arch)):
        if value:
            command += [option, value]
    result = subprocess.run(command, cwd=ROOT, capture_output=True, text=True)
    if result.returncode != 0:
        raise RuntimeError(f"{path}: running it on {backend} failed:\n{result.stderr[-3000:]}")
    return np.load(logits_path)


def verify(src, dst, n_input_channels=3, from_fmt=None, to_fmt=None, layout_in=None, layout_out=None, arch=None,
           tolerance=1e-4, clip_size=(16, 112, 112), seed=0):
    """Compare the logits of `src` and `dst` on one seeded random clip of (T, H, W) = `clip_size`."""
    clip = np.random.default_rng(seed).standard_normal((1, n_input_channels, *clip_size)).astype(np.float32)
    with tempfile.TemporaryDirectory() as work:
        clip_path = os.path.join(work, "clip.npy")
        np.save(clip_path, clip)
        source = run_model(src, clip_path, os.path.join(work, "source.npy"), from_fmt, layout_in, arch)
        target = run_model(dst, clip_path, os.path.join(work, "target.npy"), to_fmt, layout_out, arch)
    if source.shape != target.shape:
        raise ValueError(f"{dst}: logits of shape {target.shape}, {src} gives {source.shape}")
    scale = float(np.abs(source).max())
    max_abs = float(np.abs(source.astype(np.float64) - target).max())
    return Verification(max_abs, max_abs / scale if scale else max_abs, tolerance * max(1.0, scale))
