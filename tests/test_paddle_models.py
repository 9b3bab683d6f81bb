"""Paddle models: output shapes, parameter names shared with PyTorch, forward parity with PyTorch, .pdparams files."""
import pickle
from collections import OrderedDict

import numpy as np
import paddle
import pytest
import torch

from backends.paddle import mkl_cpu_type
from backends.paddle.models import MODELS, build_model
from backends.paddle.weights import load_numpy_state, load_pretrained, to_numpy_state
from backends.torch.models import build_model as build_torch_model
from backends.torch.weights import to_numpy_state as torch_numpy_state
from core import safe_pickle
from core.archs import ARCHS
from core.state_dict import StateDictMismatch, to_paddle
from tests.community import random_model

SMALL = dict(n_classes=5, widen_factor=0.0625)


def torch_twin(arch, **kwargs):
    """A seeded PyTorch model (BatchNorm statistics not 0 / 1) and a Paddle one holding its weights, both in eval."""
    torch_model = random_model(arch, seed=3, **kwargs)
    model = build_model(arch, **kwargs)
    load_numpy_state(model, torch_numpy_state(torch_model))
    model.eval()
    return torch_model, model


def test_registry_covers_every_arch():
    assert sorted(MODELS) == sorted(ARCHS)
    with pytest.raises(ValueError, match="resnet18"):
        build_model("resnet19")


@pytest.mark.parametrize("arch", ARCHS)
def test_output_shape_and_parameter_names_match_torch(arch):
    channels = 2 if arch == "i3d" else 3  # a flow I3D: the input width must follow n_input_channels
    model = build_model(arch, n_input_channels=channels, **SMALL)
    model.eval()
    clip = paddle.to_tensor(np.random.default_rng(0).normal(size=(2, channels, 2, 32, 32)).astype(np.float32))
    out = model(clip)
    assert tuple(out.shape) == (2, 5) and out.dtype == paddle.float32

    names = {k: v.shape for k, v in to_numpy_state(model).items()}
    torch_model = build_torch_model(arch, n_input_channels=channels, **SMALL)
    torch_names = {k: v.shape for k, v in torch_numpy_state(torch_model).items()}
    assert list(names) == list(torch_names)  # same order too: the same module tree
    assert names == torch_names


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
    out = model(paddle.to_tensor(clip)).numpy()
    assert out.shape == expected.shape == (2, 7)
    assert np.abs(out - expected).max() <= 1e-4 * max(1.0, np.abs(expected).max())


def test_max_pool_pads_with_minus_infinity_like_torch():
    # After a ReLU zero padding would not show; on negative inputs it would.
    clip = -1.0 - np.random.default_rng(2).uniform(size=(1, 2, 5, 7, 9)).astype(np.float32)
    out = build_model("resnet10", **SMALL).maxpool(paddle.to_tensor(clip)).numpy()
    expected = torch.nn.functional.max_pool3d(torch.from_numpy(clip), 3, 2, 1).numpy()
    assert out.shape == expected.shape == (1, 2, 3, 4, 5)
    assert out.max() < -1.0
    np.testing.assert_array_equal(out, expected)


@pytest.mark.parametrize("arch, torch_momentum", [("resnet18", 0.1), ("i3d", 0.01)])
def test_batchnorm_momentum_means_the_same_as_torch(arch, torch_momentum):
    torch_model, model = torch_twin(arch, n_classes=3, widen_factor=0.125)
    first_bn = "bn1" if arch == "resnet18" else "Conv3d_1a_7x7.bn"
    before = to_numpy_state(model)[f"{first_bn}.running_mean"]
    torch_model.train()
    model.train()
    clip = np.random.default_rng(4).normal(1.0, 1.0, size=(2, 3, 4, 32, 32)).astype(np.float32)
    torch_model(torch.from_numpy(clip))
    model(paddle.to_tensor(clip))
    after = to_numpy_state(model)[f"{first_bn}.running_mean"]
    expected = torch_numpy_state(torch_model)[f"{first_bn}.running_mean"]
    assert np.abs(after - before).max() > 10 * np.abs(after - expected).max()  # it moved, and as torch did
    np.testing.assert_allclose(after, expected, rtol=0, atol=1e-5)
    # (Paddle keeps the biased batch variance in running_var, PyTorch the unbiased one: not compared.)


@pytest.mark.parametrize("arch, head", [("resnet18", "fc"), ("r2plus1d_18", "fc"), ("i3d", "logits.conv3d")])
def test_initial_weights_are_distributed_as_in_torch(arch, head):
    # Each framework draws its own numbers; their spread must agree: He normal (fan out) convs and
    # torch's default uniform heads for the ResNets, torch's default uniform everywhere in I3D.
    paddle.seed(0)
    torch.manual_seed(0)
    state = to_numpy_state(build_model(arch, n_classes=5, widen_factor=0.25))
    expected = torch_numpy_state(build_torch_model(arch, n_classes=5, widen_factor=0.25))
    for name, value in expected.items():
        if value.std() == 0:  # BatchNorm constants
            np.testing.assert_array_equal(state[name], value, err_msg=name)
        elif value.size >= 500:
            assert abs(state[name].std() / value.std() - 1) < 0.15, name
    weight = state[f"{head}.weight"]
    bound = 1 / np.sqrt(weight.size / 5)  # uniform in +-1/sqrt(fan_in), bias too
    for values in (weight, state[f"{head}.bias"]):
        assert 0.5 * bound < np.abs(values).max() <= bound
    assert abs(weight.std() / (bound / np.sqrt(3)) - 1) < 0.15


@pytest.mark.parametrize("vendor, flags, cpu_type", [
    ("AuthenticAMD", "fma avx2 avx512f", "5"),
    ("AuthenticAMD", "sse4_2 avx", None),
    ("GenuineIntel", "fma avx2 avx512f", None),
])
def test_mkl_cpu_type_from_cpuinfo(tmp_path, vendor, flags, cpu_type):
    cpuinfo = tmp_path / "cpuinfo"
    cpuinfo.write_text(f"processor\t: 0\nvendor_id\t: {vendor}\nflags\t\t: fpu sse2 {flags}\n\n")
    assert mkl_cpu_type(str(cpuinfo)) == cpu_type
    assert mkl_cpu_type(str(tmp_path / "missing")) is None


def test_load_numpy_state_lists_every_misfit():
    model = build_model("resnet10", **SMALL)
    state = to_numpy_state(model)
    state.pop("bn1.running_var")
    state["fc.weight"] = state["fc.weight"][:, :-1]
    state["extra.weight"] = np.zeros(3, np.float32)
    with pytest.raises(StateDictMismatch) as error:
        load_numpy_state(model, state)
    assert error.value.missing == ["bn1.running_var"]
    assert error.value.unexpected == ["extra.weight"]
    assert [name for name, _, _ in error.value.mis_shaped] == ["fc.weight"]


def test_load_numpy_state_non_strict_loads_what_fits():
    source, model = build_model("resnet10", **SMALL), build_model("resnet10", **SMALL)
    state = to_numpy_state(source)
    del state["fc.weight"], state["fc.bias"]
    load_numpy_state(model, state, strict=False)
    loaded = to_numpy_state(model)
    np.testing.assert_array_equal(loaded["layer4.0.conv2.weight"], state["layer4.0.conv2.weight"])
    assert not np.array_equal(loaded["fc.weight"], to_numpy_state(source)["fc.weight"])


def test_paddle_save_of_resnet50_loads_through_load_pretrained(tmp_path):
    torch_model, model = torch_twin("resnet50", n_classes=6, widen_factor=0.125)
    path = tmp_path / "resnet50.pdparams"
    paddle.save(model.state_dict(), str(path))
    state = load_pretrained(str(path))
    expected = torch_numpy_state(torch_model)
    assert list(state) == list(expected)
    for name in expected:
        np.testing.assert_array_equal(state[name], expected[name])
    assert state["fc.weight"].shape == (6, 256)  # neutral (out, in), transposed back from Paddle's (in, out)

    fresh = build_model("resnet50", n_classes=6, widen_factor=0.125)
    load_numpy_state(fresh, state)
    fresh.eval()
    clip = paddle.to_tensor(np.random.default_rng(5).normal(size=(1, 3, 4, 32, 32)).astype(np.float32))
    np.testing.assert_array_equal(fresh(clip).numpy(), model(clip).numpy())


@pytest.mark.parametrize("protocol", [2, 4])
def test_paddle_port_pickle_of_resnet50_loads(tmp_path, protocol):
    # The PaddlePaddle 3D-ResNets port converts r3d50_K_200ep.pth with pickle.dump of an
    # OrderedDict of numpy arrays in Paddle spelling; Paddle 1.x wrote protocol 2.
    torch_model = random_model("resnet50", seed=6, n_classes=6, widen_factor=0.125)
    expected = torch_numpy_state(torch_model)
    path = tmp_path / "paddle_resnet50_mk.pdparams"
    with open(path, "wb") as file:
        pickle.dump(OrderedDict(to_paddle(expected)), file, protocol=protocol)
    state = load_pretrained(str(path))
    assert sorted(state) == sorted(expected)
    for name in expected:
        np.testing.assert_array_equal(state[name], expected[name])


class _Payload:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return open, (self.marker, "w")  # unpickling this creates the marker file


def test_malicious_pickle_is_refused_before_it_runs(tmp_path):
    # The payload works: plain pickle creates the file.
    proof = tmp_path / "proof"
    pickle.loads(pickle.dumps({"conv1.weight": _Payload(str(proof))}))["conv1.weight"].close()
    assert proof.exists()

    marker = tmp_path / "marker"
    path = tmp_path / "evil.pdparams"
    with open(path, "wb") as file:
        pickle.dump({"conv1.weight": np.zeros(3, np.float32), "fc.weight": _Payload(str(marker))}, file)
    with pytest.raises(safe_pickle.UnsafePickleError, match=r"evil\.pdparams: refusing to load io\.open"):
        load_pretrained(str(path))
    assert not marker.exists()


def test_load_pretrained_names_the_file_it_cannot_read(tmp_path):
    path = tmp_path / "truncated.pdparams"
    path.write_bytes(pickle.dumps({"a": np.zeros(3)})[:20])
    with pytest.raises(pickle.UnpicklingError, match="truncated.pdparams"):
        load_pretrained(str(path))
    path = tmp_path / "list.pdparams"
    path.write_bytes(pickle.dumps([np.zeros(3)]))
    with pytest.raises(ValueError, match="list.pdparams: not a Paddle state dict"):
        load_pretrained(str(path))


def test_full_width_shapes_are_the_community_ones():
    resnet = to_numpy_state(build_model("resnet50"))
    assert resnet["conv1.weight"].shape == (64, 3, 7, 7, 7)
    assert resnet["layer1.0.downsample.0.weight"].shape == (256, 64, 1, 1, 1)
    assert resnet["fc.weight"].shape == (400, 2048)
    i3d = to_numpy_state(build_model("i3d"))
    assert i3d["Conv3d_1a_7x7.conv3d.weight"].shape == (64, 3, 7, 7, 7)
    assert i3d["Mixed_5c.b1b.conv3d.weight"].shape == (384, 192, 3, 3, 3)
    assert i3d["logits.conv3d.weight"].shape == (400, 1024, 1, 1, 1)
    assert len(resnet) == 267 and len(i3d) == 287
