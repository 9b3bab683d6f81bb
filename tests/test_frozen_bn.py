"""`frozen_bn`: TSN's partialBN and MMAction2's norm_eval / bn_frozen, in every backend.

yjxiong/tsn-pytorch models.py TSN.train (commit 2f0468e) puts every BatchNorm of the base model but the first in
eval mode and stops their weights (get_optim_policies leaves them out of the optimizer); MMAction2's
ResNet3dCSN.train (resnet3d_csn.py @06c11e3) puts every BatchNorm in eval mode with norm_eval, and stops their
weights too with bn_frozen. One SGD step from the same weights on the same clips must freeze exactly those
layers, and land on the same weights in the three backends.
"""
import numpy as np
import pytest

from backends import BACKENDS, load
from convert.compare import random_state
from core.archs import frozen_batchnorms
from core.config import load_config

ARCH_KEYS = ["model=resnet", "model_depth=10", "resnet_widen_factor=0.125", "n_classes=3", "sample_size=32",
             "sample_duration=4"]
FIRST, LATER = "bn1", "layer1.0.bn1"  # the stem's BatchNorm, and one of those after it


def test_partial_leaves_out_the_stem_batchnorm_only():
    assert frozen_batchnorms("tsn_bninception", "partial", widen_factor=0.125)[:2] == [
        "base_model.conv2_3x3_reduce_bn", "base_model.conv2_3x3_bn"]  # his count starts at conv1_7x7_s2_bn
    norms = frozen_batchnorms("resnet10", "all")
    assert norms[0] == FIRST and len(norms) == 12
    assert frozen_batchnorms("resnet10", "partial") == norms[1:]
    assert frozen_batchnorms("resnet10", "none") == []


def one_step(backend, frozen_bn):
    """(state before, state after) of one SGD step in `backend` from the same seeded weights and clips."""
    config = load_config(None, ARCH_KEYS + ["device=cpu", f"frozen_bn={frozen_bn}", "learning_rate=0.01"],
                         require_paths=())
    engine = load(backend, "engine").Engine(config)
    interop = load(backend, "interop")
    # Running statistics away from 0 / 1, so that a layer normalising with them differs from batch statistics.
    state = random_state("resnet10", seed=0, n_classes=3, widen_factor=0.125)
    interop.load_numpy_state(engine.model, state)
    rng = np.random.default_rng(1)
    x, y = rng.normal(size=(4, 3, 4, 32, 32)).astype(np.float32), np.array([0, 1, 2, 0])
    engine.begin_epoch(1, True, 1)
    engine.train_batch(x, y)
    return interop.to_numpy_state(engine.model), state


def changed(after, before, name):
    return np.abs(after[name] - before[name]).max() > 0


@pytest.mark.parametrize("frozen_bn, first_frozen, later_frozen, weights_frozen", [
    ("none", False, False, False), ("partial", False, True, True), ("all", True, True, True),
    ("statistics", True, True, False)])
def test_frozen_layers_keep_statistics_and_weights_alike_in_every_backend(frozen_bn, first_frozen, later_frozen,
                                                                         weights_frozen):
    steps = {backend: one_step(backend, frozen_bn) for backend in BACKENDS}
    for backend, (after, before) in steps.items():
        for layer, frozen in ((FIRST, first_frozen), (LATER, later_frozen)):
            for statistic in ("running_mean", "running_var"):
                assert changed(after, before, f"{layer}.{statistic}") != frozen, (backend, layer, statistic)
            for weight in ("weight", "bias"):
                assert changed(after, before, f"{layer}.{weight}") != (frozen and weights_frozen), (backend, layer)
        assert changed(after, before, "layer1.0.conv1.weight")  # the convolutions train
    reference = steps["torch"][0]
    for backend, (after, _) in steps.items():
        for name, value in after.items():
            difference = np.abs(value - reference[name]).max() / max(1.0, np.abs(reference[name]).max())
            assert difference < 1e-5, (backend, name, difference)


def test_training_log_counts_the_frozen_weights_out():
    from core.archs import expected_shapes
    from core.engine import weights_report
    config = load_config(None, ARCH_KEYS + ["frozen_bn=partial"], require_paths=())
    shapes = expected_shapes("resnet10", n_classes=3, widen_factor=0.125)
    total = sum(int(np.prod(s)) for n, s in shapes.items() if not n.endswith(("running_mean", "running_var")))
    frozen = sum(int(np.prod(shapes[f"{norm}.{w}"])) for norm in frozen_batchnorms("resnet10", "partial",
                                                                                    n_classes=3, widen_factor=0.125)
                 for w in ("weight", "bias"))
    assert frozen > 0
    assert weights_report(config)[1:] == [
        f"trainable: conv1, bn1, layer1, layer2, layer3, layer4, fc: {total - frozen:,} of {total:,} parameters",
        "frozen BatchNorm (partial): 11 layers in eval mode, from layer1.0.bn1"]
