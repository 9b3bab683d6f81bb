"""Training features of the one schema agree across the backends and with the exact step (#20).

Label smoothing, mixup and cutmix are made once in core.mixing on the numpy batch (fixed draws here), and
colour jitter in core.spatial on the uint8 clips (every case's clips are jittered), so every backend trains
on the same clips and target distributions; gradient accumulation over the batch's two
halves must take the update one step of the whole batch takes (BatchNorm on its running statistics, as the
data-parallel equivalence in tests/test_distributed.py: batch statistics are per slice by design).
"""
import numpy as np
import pytest

from backends import BACKENDS
from convert.compare import random_state
from core.config import Config, load_config
from core.mixing import mix_batch
from core.spatial import build_spatial
from tests.parity.run_backend import run_backends
from tests.parity.test_training import relative_error

KWARGS = dict(n_classes=3, widen_factor=0.125)
LR = 1e-3


def jittered_clips():
    """Four training clips through kenshohara's colour jitter (drawn in core, seeded: the same in every backend)."""
    config = load_config(None, ["sample_size=48", "train_crop=center", "no_hflip=true",
                                "colorjitter=[0.4, 0.4, 0.4, 0.1]"], require_paths=())
    frames = np.random.default_rng(0).integers(0, 256, (4, 4, 48, 64, 3), dtype=np.uint8)
    clips = {}
    for colorjitter in ([0.4, 0.4, 0.4, 0.1], [0, 0, 0, 0]):
        spatial = build_spatial(Config({**config, "colorjitter": colorjitter}), train=True)
        clips[bool(colorjitter[0])] = np.stack([spatial(video, np.random.default_rng(i)).transpose(3, 0, 1, 2)
                                                for i, video in enumerate(frames)]).astype(np.float32)
    assert np.abs(clips[True] - clips[False]).mean() > 0.05  # the jitter changed the inputs
    return clips[True]


def mixed_batch(kind):
    clip = jittered_clips()
    labels = np.array([0, 1, 2, 1])
    config = {"n_classes": 3, "label_smoothing": 0.1, "mixup_alpha": 0.0, "cutmix_alpha": 0.0,
              f"{kind}_alpha": 1.0} if kind else {"n_classes": 3, "label_smoothing": 0.1, "mixup_alpha": 0.0,
                                                  "cutmix_alpha": 0.0}
    return mix_batch(clip, labels, config, np.random.default_rng(3))


def exact_step(state, clip, targets):
    """The whole batch's SGD step in torch float64, BatchNorm on its running statistics."""
    import torch
    import torch.nn.functional as F
    from backends.torch.interop import load_numpy_state, to_numpy_state
    from backends.torch.models import build_model
    model = build_model("resnet10", **KWARGS)
    load_numpy_state(model, state)
    model.double().eval()
    optimizer = torch.optim.SGD(model.parameters(), lr=LR, momentum=0.9, weight_decay=1e-3)
    F.cross_entropy(model(torch.from_numpy(clip).double()), torch.from_numpy(targets).double()).backward()
    optimizer.step()
    return to_numpy_state(model)


@pytest.mark.parametrize("kind", [None, "mixup", "cutmix"])
def test_accumulated_step_on_mixed_targets_is_the_exact_step_in_every_backend(tmp_path, kind):
    clip, targets = mixed_batch(kind)
    assert targets.shape == (4, 3) and np.allclose(targets.sum(1), 1) and (targets < 1).all()
    state = random_state("resnet10", seed=0, **KWARGS)
    results = run_backends(BACKENDS, "accumulate", {"resnet10": ("resnet10", KWARGS)}, {"resnet10": state}, clip,
                           str(tmp_path), labels=targets, lr=LR, momentum=0.9, weight_decay=1e-3)
    exact = exact_step(state, clip, targets)
    moved = max(relative_error(exact[name], state[name]) for name in state)
    assert moved > 1e-4  # the step did something
    for backend, out in results.items():
        for name in state:
            after = out[f"resnet10/state/{name}"]
            assert relative_error(exact[name], after) <= 1e-5, (backend, name)
