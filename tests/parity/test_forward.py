"""Eval-mode logits of every registered architecture agree across torch, Paddle and MindSpore."""
import numpy as np

from convert.compare import random_state
from core.archs import get
from backends import BACKENDS
from tests.community import ARCHS_TESTED, narrow
from tests.parity.run_backend import run_backends

KWARGS = dict(n_classes=5, widen_factor=0.125)
# A DenseNet halves the 9 frames in its max pooling and three transitions: without the max pooling they last.
NO_MAX_POOL = {"densenet": dict(no_max_pool=True)}
# Every arch with the default options, and the builder options the defaults leave out.
MODELS = {**{arch: (arch, dict(KWARGS, **narrow(arch), **NO_MAX_POOL.get(get(arch).model, {})))
             for arch in ARCHS_TESTED},
          "wideresnet50 2020 stem (64 x k)": ("wideresnet50", dict(KWARGS, wide_stem=True)),
          "preresnet10 shortcut A": ("preresnet10", dict(KWARGS, shortcut_type="A")),
          "resnet18 shortcut A, conv1 3 x 7 x 7 stride 2, no max pool": (
              "resnet18", dict(KWARGS, shortcut_type="A", conv1_t_size=3, conv1_t_stride=2, no_max_pool=True)),
          "i3d flow": ("i3d", dict(KWARGS, n_input_channels=2)),
          "i3d_resnet50 non-local, inflate_mode 1": ("i3d_resnet50", dict(KWARGS, non_local=True, inflate_mode=1))}


def test_every_arch_gives_the_same_logits_in_every_backend(tmp_path):
    weights = {model: random_state(arch, seed=index, **kwargs)
               for index, (model, (arch, kwargs)) in enumerate(MODELS.items())}
    # Odd sizes exercise the padding rules: max pool borders, TF "same" padding, stride remainders.
    clip = np.random.default_rng(0).standard_normal((2, 3, 9, 33, 37)).astype(np.float32)
    results = run_backends(BACKENDS, "forward", MODELS, weights, clip, str(tmp_path))
    for model in MODELS:
        reference = results["torch"][f"{model}/logits"]
        assert reference.shape == (2, 5) and np.abs(reference).max() > 0.1, model
        for backend in BACKENDS[1:]:
            logits = results[backend][f"{model}/logits"]
            assert np.abs(logits - reference).max() <= 1e-4 * max(1.0, np.abs(reference).max()), (model, backend)
