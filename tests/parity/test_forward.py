"""Eval-mode logits of every registered architecture agree across torch, Paddle and MindSpore."""
import numpy as np

from convert.compare import random_state
from core.archs import ARCHS
from tests.parity.run_backend import BACKENDS, run_backends

KWARGS = dict(n_classes=5, widen_factor=0.125)


def test_every_arch_gives_the_same_logits_in_every_backend(tmp_path):
    weights = {arch: random_state(arch, seed=index, **KWARGS) for index, arch in enumerate(ARCHS)}
    # Odd sizes exercise the padding rules: max pool borders, TF "same" padding, stride remainders.
    clip = np.random.default_rng(0).standard_normal((2, 3, 9, 33, 37)).astype(np.float32)
    results = run_backends(BACKENDS, "forward", ARCHS, KWARGS, weights, clip, str(tmp_path))
    for arch in ARCHS:
        reference = results["torch"][f"{arch}/logits"]
        assert reference.shape == (2, 5) and np.abs(reference).max() > 0.1, arch
        for backend in ("paddle", "mindspore"):
            logits = results[backend][f"{arch}/logits"]
            assert np.abs(logits - reference).max() <= 1e-4 * max(1.0, np.abs(reference).max()), (arch, backend)
