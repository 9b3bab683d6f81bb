"""MindSpore models: output shapes, parameter names shared with PyTorch, forward parity with PyTorch, .ckpt files."""
import mindspore as ms  # before torch (tests/conftest.py)
import numpy as np
import pytest
import torch

from backends.mindspore.models import MODELS, build_model
from backends.mindspore.weights import load_numpy_state, load_pretrained, to_numpy_state
from backends.torch.models import build_model as build_torch_model
from backends.torch.weights import to_numpy_state as torch_numpy_state
from core.archs import ARCHS
from core.state_dict import StateDictMismatch
from tests.community import random_model

SMALL = dict(n_classes=5, widen_factor=0.0625)


def torch_twin(arch, **kwargs):
    """A seeded PyTorch model (BatchNorm statistics not 0 / 1) and a MindSpore one holding its weights, both in eval."""
    torch_model = random_model(arch, seed=3, **kwargs)
    model = build_model(arch, **kwargs)
    load_numpy_state(model, torch_numpy_state(torch_model))
    model.set_train(False)
    return torch_model, model


def test_registry_covers_every_arch():
    assert sorted(MODELS) == sorted(ARCHS)
    with pytest.raises(ValueError, match="resnet18"):
        build_model("resnet19")


@pytest.mark.parametrize("arch", ARCHS)
def test_output_shape_and_parameter_names_match_torch(arch):
    channels = 2 if arch == "i3d" else 3  # a flow I3D: the input width must follow n_input_channels
    model = build_model(arch, n_input_channels=channels, **SMALL)
    model.set_train(False)
    clip = ms.Tensor(np.random.default_rng(0).normal(size=(2, channels, 2, 32, 32)).astype(np.float32))
    out = model(clip)
    assert out.shape == (2, 5) and out.dtype == ms.float32

    names = {k: v.shape for k, v in to_numpy_state(model).items()}
    torch_model = build_torch_model(arch, n_input_channels=channels, **SMALL)
    assert names == {k: v.shape for k, v in torch_numpy_state(torch_model).items()}


@pytest.mark.parametrize("arch, kwargs", [
    ("resnet18", dict(shortcut_type="A")),
    ("resnet18", dict(shortcut_type="B")),
    ("resnet50", dict()),
    ("resnet50", dict(conv1_t_size=3, conv1_t_stride=2)),
    ("r2plus1d_18", dict()),
    ("r2plus1d_18", dict(no_max_pool=True)),
    ("r2plus1d_50", dict(shortcut_type="A", conv1_t_size=5)),
    ("i3d", dict(dropout=0.5)),
])
def test_forward_matches_torch(arch, kwargs):
    torch_model, model = torch_twin(arch, n_classes=7, widen_factor=0.125, **kwargs)
    # Odd sizes exercise the padding rules (max pool borders, TF "same" padding, stride remainders).
    clip = np.random.default_rng(1).normal(size=(2, 3, 9, 33, 37)).astype(np.float32)
    with torch.no_grad():
        expected = torch_model(torch.from_numpy(clip)).numpy()
    out = model(ms.Tensor(clip)).asnumpy()
    assert out.shape == expected.shape == (2, 7)
    assert np.abs(out - expected).max() <= 1e-4 * max(1.0, np.abs(expected).max())


def test_max_pool_pads_with_minus_infinity_like_torch():
    # After a ReLU zero padding would not show; on negative inputs it would.
    clip = -1.0 - np.random.default_rng(2).uniform(size=(1, 2, 5, 7, 9)).astype(np.float32)
    out = build_model("resnet10", **SMALL).maxpool(ms.Tensor(clip)).asnumpy()
    expected = torch.nn.functional.max_pool3d(torch.from_numpy(clip), 3, 2, 1).numpy()
    assert out.shape == expected.shape == (1, 2, 3, 4, 5)
    assert out.max() < -1.0
    assert np.array_equal(out, expected)


@pytest.mark.parametrize("arch", ["resnet10", "i3d"])
def test_training_step_moves_running_stats_like_torch(arch):
    # MindSpore's BatchNorm momentum means 1 - PyTorch's: one training step must move the stats the same way.
    # Each layer's batch statistics also depend on the training-mode outputs of the layers before it.
    # (The logits are not compared: batch statistics of 2 clips at 1x1x1 amplify rounding in I3D's last blocks.)
    torch_model, model = torch_twin(arch, n_classes=3, widen_factor=0.125)
    before = to_numpy_state(model)
    torch_model.train()
    model.set_train(True)
    clip = np.random.default_rng(2).normal(size=(2, 3, 4, 32, 32)).astype(np.float32)
    torch_model(torch.from_numpy(clip))
    model(ms.Tensor(clip))
    torch_state, state = torch_numpy_state(torch_model), to_numpy_state(model)
    stats = [name for name in state if name.endswith(("running_mean", "running_var"))]
    assert stats and all(not np.allclose(state[name], before[name]) for name in stats)
    for name in stats:
        np.testing.assert_allclose(state[name], torch_state[name], rtol=1e-4, atol=1e-5, err_msg=name)


def test_ckpt_round_trip_is_exact(tmp_path):
    _, model = torch_twin("r2plus1d_18", **SMALL)
    state = to_numpy_state(model)
    path = str(tmp_path / "r2plus1d_18.ckpt")
    ms.save_checkpoint(model, path)
    loaded = load_pretrained(path)
    assert loaded.keys() == state.keys()
    for name, value in state.items():
        assert loaded[name].dtype == np.float32 and np.array_equal(loaded[name], value), name


def test_load_pretrained_names_the_bad_file(tmp_path):
    with pytest.raises(FileNotFoundError, match="missing.ckpt"):
        load_pretrained(str(tmp_path / "missing.ckpt"))
    (tmp_path / "garbage.ckpt").write_bytes(b"not a checkpoint")
    with pytest.raises(ValueError, match="garbage.ckpt"):
        load_pretrained(str(tmp_path / "garbage.ckpt"))


def test_load_numpy_state_lists_every_mismatch():
    model = build_model("resnet10", **SMALL)
    state = to_numpy_state(model)
    del state["layer1.0.bn1.running_var"]
    state["fc.extra"] = np.zeros(3, np.float32)
    state["fc.weight"] = np.zeros((6, 32), np.float32)
    with pytest.raises(StateDictMismatch) as error:
        load_numpy_state(model, state)
    assert error.value.missing == ["layer1.0.bn1.running_var"]
    assert error.value.unexpected == ["fc.extra"]
    assert [(name, tuple(want), tuple(got)) for name, want, got in error.value.mis_shaped] == \
        [("fc.weight", (5, 32), (6, 32))]


def test_load_numpy_state_non_strict_copies_the_shared_names():
    model = build_model("resnet10", **SMALL)
    new_head = {"fc.weight": np.full((5, 32), 0.5, np.float32), "fc.bias": np.arange(5, dtype=np.float32)}
    load_numpy_state(model, dict(new_head, unknown=np.zeros(1, np.float32)), strict=False)
    state = to_numpy_state(model)
    assert np.array_equal(state["fc.weight"], new_head["fc.weight"])
    assert np.array_equal(state["fc.bias"], new_head["fc.bias"])
