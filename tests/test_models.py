"""The model contract every backend meets for every registered architecture, and the reference facts.

Each backend's models must build exactly the tree core.archs describes (names and shapes), run, and move
neutral states in and out exactly. Forward agreement between the backends is tested once, across
processes, in tests/parity. Reference numbers (names, shapes, parameter counts) were taken from
kenshohara/3D-ResNets-PyTorch models/resnet.py, resnet2p1d.py and piergiaj/pytorch-i3d pytorch_i3d.py
built at full width; the PyTorch model is the reference the others are compared with.
"""
import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from backends import BACKENDS, load
from backends.paddle import mkl_cpu_type
from backends.torch.models.i3d import MaxPool3dSamePadding, Unit3D
from convert.compare import random_state
from core import archs
from core.archs import ARCHS
from core.config import load_config
from core.state_dict import StateDictMismatch
from tests.community import ARCHS_TESTED, narrow, random_model

# Narrow enough for MindSpore on CPU, wide enough that every stage has channels.
SMALL = {arch: dict(n_classes=5, **narrow(arch, 0.0625 if arch in ("resnet152", "resnet200") else 0.125))
         for arch in ARCHS}


def frames(arch):
    """A DenseNet halves time in its max pooling and in each of its three transitions: 16 frames, as his clips.
    S3D (kylemin) ends with an unpadded (2, 2, 2) max pool after time has been halved twice: 8 frames at least.
    MMAction2's I3D-ResNet halves time twice before its unpadded pool2 (2, 1, 1): 5 frames at least."""
    return 16 if arch.startswith("densenet") else 8 if arch in ("s3d", "i3d_resnet50") else 4


def channels(arch):
    """A flow I3D (2 channels): the stem must follow n_input_channels."""
    return 2 if arch == "i3d" else 3


@pytest.mark.parametrize("arch", ARCHS_TESTED)
@pytest.mark.parametrize("backend", BACKENDS)
def test_every_backend_builds_the_spec_of_every_arch(backend, arch):
    interop = load(backend, "interop")
    kwargs = dict(SMALL[arch], n_input_channels=channels(arch))
    model = load(backend, "models").build_model(arch, **kwargs)
    state = interop.to_numpy_state(model)
    assert {name: value.shape for name, value in state.items()} == archs.expected_shapes(arch, **kwargs)
    logits = interop.forward(model, np.random.default_rng(0).normal(size=(2, channels(arch), frames(arch), 32, 32))
                             .astype(np.float32))
    assert logits.shape == (2, 5) and logits.dtype == np.float32 and np.isfinite(logits).all()


@pytest.mark.parametrize("backend", BACKENDS)
def test_states_go_in_and_out_exactly_and_misfits_are_listed(backend):
    interop, models = load(backend, "interop"), load(backend, "models")
    kwargs = SMALL["resnet10"]
    state = random_state("resnet10", seed=1, **kwargs)
    model = models.build_model("resnet10", **kwargs)
    interop.load_numpy_state(model, state)
    out = interop.to_numpy_state(model)
    assert sorted(out) == sorted(state)
    for name in state:
        np.testing.assert_array_equal(out[name], state[name], err_msg=name)

    broken = dict(state)
    broken.pop("bn1.running_var")
    broken["fc.weight"] = broken["fc.weight"][:, :-1]
    broken["extra.weight"] = np.zeros(3, np.float32)
    with pytest.raises(StateDictMismatch) as error:
        interop.load_numpy_state(model, broken)
    assert (error.value.missing, error.value.unexpected) == (["bn1.running_var"], ["extra.weight"])
    assert [name for name, _, _ in error.value.mis_shaped] == ["fc.weight"]

    # Non-strict: the names both have are loaded, shapes still checked.
    fresh = models.build_model("resnet10", **kwargs)
    headless = {name: value for name, value in state.items() if not name.startswith("fc.")}
    interop.load_numpy_state(fresh, headless, strict=False)
    loaded = interop.to_numpy_state(fresh)
    np.testing.assert_array_equal(loaded["layer4.0.conv2.weight"], state["layer4.0.conv2.weight"])
    assert not np.array_equal(loaded["fc.weight"], state["fc.weight"])
    with pytest.raises(StateDictMismatch, match="fc.bias"):
        interop.load_numpy_state(models.build_model("resnet10", n_classes=9, widen_factor=0.125), state, strict=False)


def test_unknown_archs_and_keywords_are_named():
    with pytest.raises(ValueError, match="unknown architecture 'resnet19'.*resnet18"):
        archs.get("resnet19")
    with pytest.raises(ValueError, match="resnet18 takes no dropout"):
        archs.expected_shapes("resnet18", dropout=0.5)
    with pytest.raises(ValueError, match="model_depth 11 is not available for model 'resnet'"):
        archs.arch_name(load_config(None, ["model_depth=11"], ()))


def test_config_keys_and_builder_kwargs_map_both_ways():
    for arch, spec in archs.SPECS.items():
        kwargs = {name: option.default for name, option in spec.options.items()}
        kwargs.update(n_classes=7, n_input_channels=2)
        config = load_config(None, spec.config_overrides(kwargs), ())
        assert archs.arch_name(config) == arch
        assert archs.model_kwargs(config) == kwargs


@pytest.mark.parametrize("backend", BACKENDS)
def test_max_pool_pads_with_minus_infinity_like_torch(backend):
    # After a ReLU zero padding would not show; on negative inputs it would.
    clip = -1.0 - np.random.default_rng(2).uniform(size=(1, 2, 5, 7, 9)).astype(np.float32)
    model, interop = load(backend, "models").build_model("resnet10", **SMALL["resnet10"]), load(backend, "interop")
    out = interop.numpy(model.maxpool(interop.tensor(clip)))
    expected = F.max_pool3d(torch.from_numpy(clip), 3, 2, 1).numpy()
    assert out.shape == expected.shape == (1, 2, 3, 4, 5)
    assert out.max() < -1.0
    np.testing.assert_array_equal(out, expected)


@pytest.mark.parametrize("arch, first_bn", [("resnet18", "bn1"), ("i3d", "Conv3d_1a_7x7.bn"),
                                            ("i3d_mszoo", "Conv3d_1a_7x7.bn"), ("s3d", "base.0.bn_s")])
@pytest.mark.parametrize("backend", BACKENDS)
def test_batchnorm_momentum_means_what_it_means_in_torch(backend, arch, first_bn):
    """One training-mode forward moves the running mean as torch's BatchNorm does (momentum 0.1, I3D 0.01, the
    zoo's I3D 0.9, S3D 0.001)."""
    kwargs = dict(n_classes=3, widen_factor=0.125)
    state = random_state(arch, seed=3, **kwargs)
    clip = np.random.default_rng(4).normal(1.0, 1.0, size=(2, 3, frames(arch), 32, 32)).astype(np.float32)
    reference = random_model(arch, **kwargs)
    load(BACKENDS[0], "interop").load_numpy_state(reference, state)
    reference.train()(torch.from_numpy(clip))
    expected = reference.state_dict()[f"{first_bn}.running_mean"].numpy()

    config = load_config(None, archs.get(arch).config_overrides(kwargs) + ["device=cpu", "dropout=0"], ())
    engine = load(backend, "engine").Engine(config)
    engine.interop.load_numpy_state(engine.model, state)
    engine.begin_epoch(1, True)
    engine.eval_batch(clip, np.zeros(2, np.int64))  # a forward in training mode, without a step
    after = engine.interop.to_numpy_state(engine.model)[f"{first_bn}.running_mean"]
    before = state[f"{first_bn}.running_mean"]
    assert np.abs(after - before).max() > 10 * np.abs(after - expected).max()  # it moved, and as torch's did
    np.testing.assert_allclose(after, expected, rtol=0, atol=1e-5)


@pytest.mark.parametrize("arch, head", [("resnet18", "fc"), ("r2plus1d_18", "fc"), ("i3d", "logits.conv3d"),
                                        ("resnext50", "fc"), ("densenet121", "classifier")])
@pytest.mark.parametrize("backend", BACKENDS[1:])
def test_initial_weights_are_distributed_as_in_torch(backend, arch, head):
    # Each framework draws its own numbers; their spread must agree: He normal (fan out) convs and
    # torch's default uniform heads for the ResNets, torch's default uniform everywhere in I3D.
    # 40 classes: with 5, all five head biases fell inside half the bound in about 3% of draws (unseeded).
    kwargs = dict(n_classes=40, widen_factor=0.25)
    state = load(backend, "interop").to_numpy_state(load(backend, "models").build_model(arch, **kwargs))
    expected = load(BACKENDS[0], "interop").to_numpy_state(load(BACKENDS[0], "models").build_model(arch, **kwargs))
    for name, value in expected.items():
        if value.std() == 0:  # BatchNorm constants
            np.testing.assert_array_equal(state[name], value, err_msg=name)
        elif value.size >= 500:
            assert abs(state[name].std() / value.std() - 1) < 0.15, name
    weight = state[f"{head}.weight"]
    bound = 1 / np.sqrt(weight.size / 40)  # uniform in +-1/sqrt(fan_in), bias too
    for values in (weight, state[f"{head}.bias"]):
        assert 0.5 * bound < np.abs(values).max() <= bound
    assert abs(weight.std() / (bound / np.sqrt(3)) - 1) < 0.15


@pytest.mark.parametrize("vendor, flags, cpu_type", [
    ("AuthenticAMD", "fma avx2 avx512f", "5"),
    ("AuthenticAMD", "sse4_2 avx", None),
    ("GenuineIntel", "fma avx2 avx512f", None),
])
def test_paddle_mkl_cpu_type_from_cpuinfo(tmp_path, vendor, flags, cpu_type):
    cpuinfo = tmp_path / "cpuinfo"
    cpuinfo.write_text(f"processor\t: 0\nvendor_id\t: {vendor}\nflags\t\t: fpu sse2 {flags}\n\n")
    assert mkl_cpu_type(str(cpuinfo)) == cpu_type
    assert mkl_cpu_type(str(tmp_path / "missing")) is None


# ---- the reference trees, from the specs (what every backend builds) ----

CONV, BN, FC = ("weight",), ("weight", "bias", "running_mean", "running_var"), ("weight", "bias")


def expand(modules):
    """'conv1 bn1 ...' -> full neutral names (leaves from the module kind)."""
    names = []
    for module in modules.split():
        kind = FC if module == "fc" else BN if ".bn" in "." + module or module.endswith("downsample.1") else CONV
        names += [f"{module}.{leaf}" for leaf in kind]
    return names


def block(prefix, downsample=False):
    return f"{prefix}.conv1 {prefix}.bn1 {prefix}.conv2 {prefix}.bn2" + (
        f" {prefix}.downsample.0 {prefix}.downsample.1" if downsample else "")


# kenshohara's resnet18, shortcut B: every state-dict key (without num_batches_tracked), in order.
RESNET18_B = expand(" ".join([
    "conv1 bn1",
    block("layer1.0"), block("layer1.1"),
    block("layer2.0", True), block("layer2.1"),
    block("layer3.0", True), block("layer3.1"),
    block("layer4.0", True), block("layer4.1"),
    "fc",
]))


def test_resnet18_is_kenshohara_tree_and_parameter_counts_are_the_references():
    shapes = archs.expected_shapes("resnet18")
    assert list(shapes) == RESNET18_B
    assert shapes["layer2.0.downsample.0.weight"] == (128, 64, 1, 1, 1) and shapes["fc.weight"] == (400, 512)
    assert [name for name in torch_state_names("resnet18") if "num_batches_tracked" not in name] == RESNET18_B

    def count(arch, **kwargs):
        return sum(int(np.prod(shape)) for name, shape in archs.expected_shapes(arch, **kwargs).items()
                   if not name.endswith(("running_mean", "running_var")))
    assert count("resnet18", shortcut_type="B") == 33_409_104
    assert count("resnet18", shortcut_type="A") == 33_235_280  # kenshohara's r3d18_K_200ep: "33.2M"
    assert count("i3d") == 12_697_264
    assert len(archs.expected_shapes("resnet50")) == 267 and len(archs.expected_shapes("i3d")) == 287


def torch_state_names(arch, **kwargs):
    return list(load(BACKENDS[0], "models").build_model(arch, **kwargs).state_dict())


def test_r2plus1d_tree_and_mid_planes():
    shapes = archs.expected_shapes("r2plus1d_18")
    assert shapes["conv1_s.weight"] == (110, 3, 1, 7, 7)
    assert shapes["conv1_t.weight"] == (64, 110, 7, 1, 1)
    assert shapes["bn1_t.running_var"] == (64,)
    assert shapes["layer1.0.conv1_s.weight"] == (144, 64, 1, 3, 3)
    assert shapes["layer2.0.conv1_s.weight"] == (230, 64, 1, 3, 3)
    assert shapes["layer2.0.conv1_t.weight"] == (128, 230, 3, 1, 1)
    assert shapes["layer2.0.conv2_s.weight"] == (288, 128, 1, 3, 3)
    assert shapes["layer2.0.downsample.0.weight"] == (128, 64, 1, 1, 1)
    assert "layer2.0.bn2_t.bias" in shapes and "layer1.0.downsample.0.weight" not in shapes
    bottleneck = archs.expected_shapes("r2plus1d_50", widen_factor=0.25)
    assert {"layer1.0.conv1.weight", "layer1.0.conv2_s.weight", "layer1.0.conv2_t.weight",
            "layer1.0.conv3.weight", "layer1.0.bn3.running_mean", "layer1.0.downsample.0.weight"} <= set(bottleneck)


def test_i3d_tree_is_piergiaj():
    shapes = archs.expected_shapes("i3d")
    assert shapes["Conv3d_1a_7x7.conv3d.weight"] == (64, 3, 7, 7, 7)
    assert shapes["Mixed_5c.b3b.bn.running_var"] == (128,)
    assert shapes["Mixed_3b.b1b.conv3d.weight"] == (128, 96, 3, 3, 3)
    assert shapes["Mixed_5c.b1b.conv3d.weight"] == (384, 192, 3, 3, 3)
    assert shapes["logits.conv3d.weight"] == (400, 1024, 1, 1, 1)
    assert shapes["logits.conv3d.bias"] == (400,)
    assert not [k for k in shapes if k.startswith("logits.bn") or ".b3a." in k or k.endswith("conv3d.bias")
                and not k.startswith("logits")]
    bn = load(BACKENDS[0], "models").build_model("i3d").Conv3d_1a_7x7.bn
    assert (bn.eps, bn.momentum) == (1e-3, 0.01)


# ---- the PyTorch model against the reference's own operations ----

def test_resnet_options_change_the_stem():
    model = load(BACKENDS[0], "models").build_model("resnet18", n_classes=3, n_input_channels=2, widen_factor=0.25,
                                                    conv1_t_size=3, conv1_t_stride=2, no_max_pool=True)
    assert model.conv1.weight.shape == (16, 2, 3, 7, 7)
    assert model.conv1.stride == (2, 2, 2) and model.conv1.padding == (1, 3, 3)
    stem = model.relu(model.bn1(model.conv1(torch.randn(1, 2, 8, 32, 32))))
    assert stem.shape == (1, 16, 4, 16, 16)
    assert model(torch.randn(1, 2, 8, 32, 32)).shape == (1, 3)


def test_shortcut_a_has_no_parameters_and_zero_pads_channels():
    build = load(BACKENDS[0], "models").build_model
    assert not [k for k in archs.expected_shapes("resnet18", shortcut_type="A") if "downsample" in k]
    assert not [k for k in archs.expected_shapes("resnet50", shortcut_type="A") if "downsample" in k]
    x = torch.randn(1, 16, 4, 6, 6)
    out = build("resnet18", shortcut_type="A", widen_factor=0.25).layer2[0].downsample(x)
    assert out.shape == (1, 32, 2, 3, 3)
    assert torch.equal(out[:, :16], x[:, :, ::2, ::2, ::2]) and not out[:, 16:].any()


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


@pytest.mark.parametrize("arch", ARCHS_TESTED)
def test_mindspore_parameter_names_are_their_paths(arch):
    """MindSpore names a parameter when its cell is attached: a container filled after it was attached leaves
    its parameters without the container's prefix, and save_N.ckpt (written by parameter name) then no longer
    fits the model (DenseNet's `features` did)."""
    model = load("mindspore", "models").build_model(arch, **SMALL[arch])
    assert [(path, param.name) for path, param in model.parameters_and_names() if param.name != path] == []
