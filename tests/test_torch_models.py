"""PyTorch models: shapes, the community parameter trees, TF 'same' padding, checkpoint loading.

Reference numbers (names, shapes, parameter counts) were taken from
kenshohara/3D-ResNets-PyTorch models/resnet.py, resnet2p1d.py and
piergiaj/pytorch-i3d pytorch_i3d.py built at full width.
"""
import argparse

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from backends.torch.models import MODELS, build_model
from backends.torch.models.i3d import MaxPool3dSamePadding, Unit3D
from backends.torch.weights import load_numpy_state, load_pretrained, to_numpy_state
from core.archs import ARCHS
from core.state_dict import StateDictMismatch
from tests.community import random_model, write_kenshohara_pth, write_piergiaj_pt

CONV, BN, FC = ("weight",), ("weight", "bias", "running_mean", "running_var", "num_batches_tracked"), ("weight", "bias")


def expand(modules):
    """'conv1 bn1 ...' -> full state-dict names (leaves from the module kind)."""
    names = []
    for module in modules.split():
        kind = FC if module == "fc" else BN if ".bn" in "." + module or module.endswith("downsample.1") else CONV
        names += [f"{module}.{leaf}" for leaf in kind]
    return names


def block(prefix, downsample=False):
    return f"{prefix}.conv1 {prefix}.bn1 {prefix}.conv2 {prefix}.bn2" + (
        f" {prefix}.downsample.0 {prefix}.downsample.1" if downsample else "")


# kenshohara's resnet18, shortcut B: every state-dict key, in order.
RESNET18_B = expand(" ".join([
    "conv1 bn1",
    block("layer1.0"), block("layer1.1"),
    block("layer2.0", True), block("layer2.1"),
    block("layer3.0", True), block("layer3.1"),
    block("layer4.0", True), block("layer4.1"),
    "fc",
]))


def narrow(arch):
    return 0.0625 if arch in ("resnet152", "resnet200") else 0.125 if arch == "resnet101" else 0.25


def test_registry_covers_every_arch_and_names_unknown_ones():
    assert set(MODELS) == set(ARCHS)
    with pytest.raises(ValueError, match="unknown model 'resnet19'.*resnet18.*i3d"):
        build_model("resnet19")


@pytest.mark.parametrize("arch", ARCHS)
def test_output_is_batch_by_classes(arch):
    model = build_model(arch, n_classes=5, widen_factor=narrow(arch)).eval()
    with torch.no_grad():
        out = model(torch.randn(2, 3, 8, 32, 32))
    assert out.shape == (2, 5) and out.dtype == torch.float32
    assert torch.isfinite(out).all()


def test_resnet_options_change_the_stem():
    model = build_model("resnet18", n_classes=3, n_input_channels=2, widen_factor=0.25, conv1_t_size=3,
                        conv1_t_stride=2, no_max_pool=True)
    assert model.conv1.weight.shape == (16, 2, 3, 7, 7)
    assert model.conv1.stride == (2, 2, 2) and model.conv1.padding == (1, 3, 3)
    stem = model.relu(model.bn1(model.conv1(torch.randn(1, 2, 8, 32, 32))))
    assert stem.shape == (1, 16, 4, 16, 16)
    assert model(torch.randn(1, 2, 8, 32, 32)).shape == (1, 3)


def test_resnet18_state_dict_is_kenshohara_tree():
    model = build_model("resnet18")
    assert list(model.state_dict()) == RESNET18_B
    assert model.state_dict()["layer2.0.downsample.0.weight"].shape == (128, 64, 1, 1, 1)
    assert model.fc.weight.shape == (400, 512)


def test_exact_parameter_counts_of_reference_models():
    count = lambda model: sum(p.numel() for p in model.parameters())  # noqa: E731
    assert count(build_model("resnet18", shortcut_type="B")) == 33_409_104
    # kenshohara's r3d18_K_200ep (shortcut A): "33.2M".
    assert count(build_model("resnet18", shortcut_type="A")) == 33_235_280
    assert count(build_model("i3d")) == 12_697_264


def test_shortcut_a_has_no_parameters_and_zero_pads_channels():
    state = build_model("resnet18", shortcut_type="A").state_dict()
    assert not [k for k in state if "downsample" in k]
    assert len(state) == len(RESNET18_B) - 3 * (1 + 5)
    bottleneck = build_model("resnet50", shortcut_type="A", widen_factor=0.25)
    assert not [k for k in bottleneck.state_dict() if "downsample" in k]
    x = torch.randn(1, 16, 4, 6, 6)
    shortcut = build_model("resnet18", shortcut_type="A", widen_factor=0.25).layer2[0].downsample
    out = shortcut(x)
    assert out.shape == (1, 32, 2, 3, 3)
    assert torch.equal(out[:, :16], x[:, :, ::2, ::2, ::2]) and not out[:, 16:].any()


def test_r2plus1d_18_tree_and_mid_planes():
    shapes = {k: tuple(v.shape) for k, v in build_model("r2plus1d_18").state_dict().items()}
    assert shapes["conv1_s.weight"] == (110, 3, 1, 7, 7)
    assert shapes["conv1_t.weight"] == (64, 110, 7, 1, 1)
    assert shapes["bn1_t.running_var"] == (64,)
    assert shapes["layer1.0.conv1_s.weight"] == (144, 64, 1, 3, 3)
    assert shapes["layer2.0.conv1_s.weight"] == (230, 64, 1, 3, 3)
    assert shapes["layer2.0.conv1_t.weight"] == (128, 230, 3, 1, 1)
    assert shapes["layer2.0.conv2_s.weight"] == (288, 128, 1, 3, 3)
    assert shapes["layer2.0.downsample.0.weight"] == (128, 64, 1, 1, 1)
    assert "layer2.0.bn2_t.bias" in shapes and "layer1.0.downsample.0.weight" not in shapes
    bottleneck = build_model("r2plus1d_50", widen_factor=0.25).state_dict()
    assert {"layer1.0.conv1.weight", "layer1.0.conv2_s.weight", "layer1.0.conv2_t.weight",
            "layer1.0.conv3.weight", "layer1.0.bn3.running_mean", "layer1.0.downsample.0.weight"} <= set(bottleneck)


def test_i3d_tree_is_piergiaj():
    model = build_model("i3d")
    shapes = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    assert shapes["Conv3d_1a_7x7.conv3d.weight"] == (64, 3, 7, 7, 7)
    assert shapes["Mixed_5c.b3b.bn.running_var"] == (128,)
    assert shapes["Mixed_3b.b1b.conv3d.weight"] == (128, 96, 3, 3, 3)
    assert shapes["logits.conv3d.weight"] == (400, 1024, 1, 1, 1)
    assert shapes["logits.conv3d.bias"] == (400,)
    assert not [k for k in shapes if k.startswith("logits.bn") or ".b3a." in k or k.endswith("conv3d.bias")
                and not k.startswith("logits")]
    bn = model.Conv3d_1a_7x7.bn
    assert (bn.eps, bn.momentum) == (1e-3, 0.01)


def test_i3d_final_pooling_at_224_is_the_reference_avgpool_2_7_7():
    model = random_model("i3d", n_classes=6, widen_factor=0.0625)
    features = {}
    model.Mixed_5c.register_forward_hook(lambda module, inputs, output: features.setdefault("x", output))
    with torch.no_grad():
        out = model(torch.randn(1, 3, 32, 224, 224))
        x = features["x"]
        assert x.shape[2:] == (4, 7, 7)
        # piergiaj: logits(dropout(AvgPool3d([2, 7, 7], stride 1))) -> (B, classes, 3); then averaged over time.
        reference = model.logits(nn.AvgPool3d((2, 7, 7), stride=1)(x)).squeeze(3).squeeze(3)
    assert reference.shape == (1, 6, 3)
    torch.testing.assert_close(out, reference.mean(2))
    assert not torch.allclose(out, model.logits(x.mean((2, 3, 4), keepdim=True)).flatten(1))


# F.pad order: (w before, w after, h before, h after, t before, t after).
# Odd size: kernel 7 - size % 2 = 6 -> 3 + 3; even size: kernel 7 - stride 2 = 5 -> 2 + 3 (more after).
@pytest.mark.parametrize("size, pads, out_size", [
    ((9, 34, 36), (2, 3, 2, 3, 3, 3), (5, 17, 18)),
    ((8, 33, 37), (3, 3, 3, 3, 2, 3), (4, 17, 19)),
])
def test_unit3d_pads_like_tensorflow_same(size, pads, out_size):
    unit = Unit3D(2, 3, kernel_shape=(7, 7, 7), stride=(2, 2, 2), activation_fn=None, use_batch_norm=False)
    x = torch.randn(1, 2, *size)
    out = unit(x)
    assert out.shape[2:] == out_size
    torch.testing.assert_close(out, F.conv3d(F.pad(x, pads), unit.conv3d.weight, stride=2))


@pytest.mark.parametrize("size, pads, out_size", [
    ((9, 34, 36), (0, 1, 0, 1, 1, 1), (5, 17, 18)),
    ((8, 33, 37), (1, 1, 1, 1, 0, 1), (4, 17, 19)),
])
def test_max_pool_pads_with_zeros_like_piergiaj(size, pads, out_size):
    x = -torch.rand(1, 2, *size) - 0.1  # all negative: zero padding shows at the borders
    out = MaxPool3dSamePadding(kernel_size=(3, 3, 3), stride=(2, 2, 2))(x)
    assert out.shape[2:] == out_size
    torch.testing.assert_close(out, F.max_pool3d(F.pad(x, pads), 3, 2))
    assert (out[..., -1] == 0).all()


def test_i3d_runs_on_odd_sizes():
    model = build_model("i3d", n_classes=4, widen_factor=0.125).eval()
    with torch.no_grad():
        assert model(torch.randn(2, 3, 9, 33, 37)).shape == (2, 4)


def test_numpy_state_round_trip():
    model = random_model("resnet10", seed=1, n_classes=7, widen_factor=0.25)
    state = to_numpy_state(model)
    assert not [k for k in state if "num_batches_tracked" in k]
    assert state["fc.weight"].shape == (7, 128) and state["bn1.running_var"].dtype == np.float32
    other = build_model("resnet10", n_classes=7, widen_factor=0.25).eval()
    load_numpy_state(other, state)
    x = torch.randn(1, 3, 8, 32, 32)
    with torch.no_grad():
        assert torch.equal(model(x), other(x))


@pytest.mark.parametrize("arch", ["resnet18", "r2plus1d_18"])
@pytest.mark.parametrize("data_parallel", [False, True])
def test_kenshohara_file_loads_into_a_fresh_model(tmp_path, arch, data_parallel):
    path = tmp_path / "r3d.pth"
    saved = write_kenshohara_pth(path, arch, 5, data_parallel=data_parallel, seed=3, widen_factor=0.25,
                                 shortcut_type="A")
    raw = torch.load(path, weights_only=True)
    assert set(raw) == {"epoch", "arch", "state_dict", "optimizer", "scheduler"}
    assert any(k.endswith("num_batches_tracked") for k in raw["state_dict"])
    assert all(k.startswith("module.") for k in raw["state_dict"]) == data_parallel

    state = load_pretrained(path)
    assert "conv1.weight" in state or "conv1_s.weight" in state
    assert not [k for k in state if "num_batches_tracked" in k or k.startswith("module.")]
    assert abs(float(np.mean(state["bn1.running_var" if arch == "resnet18" else "bn1_t.running_var"])) - 1) < 0.5
    model = build_model(arch, n_classes=5, widen_factor=0.25, shortcut_type="A").eval()
    x = torch.randn(2, 3, 8, 32, 32)
    with torch.no_grad():
        before = model(x)
        load_numpy_state(model, state)
        assert not torch.allclose(before, saved(x))
        assert torch.equal(model(x), saved(x))


@pytest.mark.parametrize("data_parallel", [False, True])
def test_piergiaj_file_loads_into_a_fresh_model(tmp_path, data_parallel):
    path = tmp_path / "rgb_imagenet.pt"
    saved = write_piergiaj_pt(path, n_classes=6, data_parallel=data_parallel, widen_factor=0.125)
    state = load_pretrained(path)
    assert state["logits.conv3d.bias"].shape == (6,) and "Mixed_5c.b3b.bn.running_var" in state
    model = build_model("i3d", n_classes=6, widen_factor=0.125).eval()
    load_numpy_state(model, state)
    x = torch.randn(1, 3, 16, 32, 32)
    with torch.no_grad():
        assert torch.equal(model(x), saved(x))


def test_piergiaj_flow_file_loads_into_a_two_channel_model(tmp_path):
    path = tmp_path / "flow_imagenet.pt"
    saved = write_piergiaj_pt(path, n_classes=6, widen_factor=0.125, n_input_channels=2)
    state = load_pretrained(path)
    assert state["Conv3d_1a_7x7.conv3d.weight"].shape[1] == 2
    model = build_model("i3d", n_classes=6, widen_factor=0.125, n_input_channels=2).eval()
    load_numpy_state(model, state)
    x = torch.randn(1, 2, 16, 32, 32)
    with torch.no_grad():
        assert torch.equal(model(x), saved(x))
    with pytest.raises(StateDictMismatch, match=r"Conv3d_1a_7x7.conv3d.weight: model \(8, 3, 7, 7, 7\)"):
        load_numpy_state(build_model("i3d", n_classes=6, widen_factor=0.125), state)


def test_mismatched_checkpoints_name_the_keys(tmp_path):
    path = tmp_path / "r3d18.pth"
    write_kenshohara_pth(path, "resnet18", 5, widen_factor=0.25)
    state = load_pretrained(path)

    with pytest.raises(StateDictMismatch, match=r"mis-shaped: fc.weight: model \(7, 128\), checkpoint \(5, 128\)"):
        load_numpy_state(build_model("resnet18", n_classes=7, widen_factor=0.25), state)

    with pytest.raises(StateDictMismatch) as deeper:
        load_numpy_state(build_model("resnet34", n_classes=5, widen_factor=0.25), state)
    assert "layer1.2.conv1.weight" in deeper.value.missing and not deeper.value.unexpected
    assert "layer3.5.bn2.running_var" in str(deeper.value)

    with pytest.raises(StateDictMismatch) as shallower:
        load_numpy_state(build_model("resnet10", n_classes=5, widen_factor=0.25), state)
    assert "layer4.1.conv2.weight" in shallower.value.unexpected and not shallower.value.missing

    with pytest.raises(StateDictMismatch) as other_shortcut:
        load_numpy_state(build_model("resnet18", n_classes=5, widen_factor=0.25, shortcut_type="A"), state)
    assert "layer2.0.downsample.0.weight" in other_shortcut.value.unexpected


def test_non_strict_loads_shared_keys_but_still_rejects_shapes(tmp_path):
    state = to_numpy_state(random_model("resnet18", n_classes=5, widen_factor=0.25))
    model = build_model("resnet10", n_classes=5, widen_factor=0.25)
    load_numpy_state(model, state, strict=False)
    np.testing.assert_array_equal(model.layer1[0].conv1.weight.detach().numpy(), state["layer1.0.conv1.weight"])
    with pytest.raises(StateDictMismatch, match="fc.bias"):
        load_numpy_state(build_model("resnet10", n_classes=9, widen_factor=0.25), state, strict=False)


def test_load_pretrained_rejects_other_files_naming_them(tmp_path):
    not_weights = tmp_path / "notes.pth"
    torch.save({"epoch": 3, "lr": [0.1]}, not_weights)
    with pytest.raises(ValueError, match="notes.pth: neither a kenshohara checkpoint"):
        load_pretrained(not_weights)
    unsafe = tmp_path / "unsafe.pth"  # arbitrary objects are never unpickled
    torch.save({"state_dict": {"conv1.weight": torch.zeros(3)}, "opt": argparse.Namespace(lr=0.1)}, unsafe)
    with pytest.raises(ValueError, match="unsafe.pth: .*argparse.Namespace"):
        load_pretrained(unsafe)
    truncated = tmp_path / "truncated.pth"
    truncated.write_bytes(not_weights.read_bytes()[:40])
    with pytest.raises(ValueError, match="truncated.pth: not a PyTorch checkpoint"):
        load_pretrained(truncated)
