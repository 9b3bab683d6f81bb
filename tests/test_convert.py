"""Checkpoint conversion: formats, community layouts, architecture inference, safety, --verify, memory."""
import itertools
import os
import pickle
import subprocess
import sys
from collections import OrderedDict

import mindspore
import numpy as np
import paddle
import pytest
import torch

from backends.mindspore.models import build_model as build_mindspore_model
from backends.mindspore.interop import to_numpy_state as mindspore_state
from backends.paddle.models import build_model as build_paddle_model
from backends.paddle.interop import to_numpy_state as paddle_state
from backends.torch.models import build_model as build_torch_model
from backends.torch.interop import to_numpy_state as torch_state
from convert import Checkpoint, convert, expected_shapes, infer_arch, read_checkpoint, write_checkpoint
from convert.__main__ import main as convert_main
from convert.verify import verify
from core import safe_pickle
from core import archs
from core.archs import ARCHS, get as get_arch
from core.state_dict import StateDictMismatch, to_mindspore
from tests.community import narrow, write_kenshohara_pth, write_piergiaj_pt, zoo_name

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# Small widths keep every test fast; n_classes != 400 shows the head is read from the file.
CASES = {"resnet18": dict(widen_factor=0.125), "resnet50": dict(widen_factor=0.0625),
         "r2plus1d_18": dict(widen_factor=0.125), "i3d": dict(widen_factor=0.125), "resnext50": narrow("resnext50"),
         "densenet121": dict(widen_factor=0.25)}
EXTENSIONS = {"pth": ".pth", "pdparams": ".pdparams", "ckpt": ".ckpt", "npz": ".npz", "safetensors": ".safetensors"}
CLIP = ["--clip-size", "8", "32", "32"]


def seeded_state(arch, seed=0, **kwargs):
    """Random neutral parameters of `arch` (positive running variances)."""
    rng = np.random.default_rng(seed)
    state = {}
    for name, shape in expected_shapes(arch, **kwargs).items():
        value = rng.standard_normal(shape).astype(np.float32)
        state[name] = np.abs(value) + 0.5 if name.endswith("running_var") else value
    return state


def assert_same_state(actual, expected):
    assert sorted(actual) == sorted(expected)
    for name, value in expected.items():
        assert actual[name].dtype == value.dtype, name
        np.testing.assert_array_equal(actual[name], value, err_msg=name)


def quiet(*_):
    pass


@pytest.mark.parametrize("arch", ARCHS)
def test_expected_shapes_are_those_of_the_torch_models(arch):
    takes = get_arch(arch).builder_kwargs({})
    kwargs = {key: value for key, value in dict(n_classes=7, n_input_channels=2, conv1_t_size=3,
                                                shortcut_type="A").items() if key in takes}
    kwargs.update(narrow(arch))
    model_shapes = {name: value.shape for name, value in torch_state(build_torch_model(arch, **kwargs)).items()}
    assert expected_shapes(arch, **kwargs) == model_shapes


@pytest.mark.parametrize("arch, kwargs", [
    ("resnet18", dict(widen_factor=0.125)),
    ("resnet34", dict(widen_factor=0.25, n_input_channels=2, conv1_t_size=3, shortcut_type="A")),
    ("resnet50", dict(widen_factor=0.0625, n_classes=101)),
    ("resnet101", dict(widen_factor=0.1)),
    ("r2plus1d_18", dict(widen_factor=0.5, conv1_t_size=1)),
    ("r2plus1d_50", dict(widen_factor=0.125)),
    ("i3d", dict(widen_factor=0.25, n_input_channels=2, n_classes=51)),
    ("s3d", dict(widen_factor=0.5, n_input_channels=2, n_classes=101)),
])
def test_infer_arch_recovers_the_builder_arguments(arch, kwargs):
    defaults = dict(n_classes=400, n_input_channels=3, widen_factor=1.0)
    if "shortcut_type" in archs.get(arch).options:
        defaults.update(conv1_t_size=7, shortcut_type="B")
    assert infer_arch(expected_shapes(arch, **kwargs)) == (arch, {**defaults, **kwargs})


@pytest.mark.parametrize("arch", CASES)
def test_every_direction_keeps_names_and_values(tmp_path, arch):
    state = seeded_state(arch, n_classes=5, **CASES[arch])
    for extension in EXTENSIONS.values():
        write_checkpoint(tmp_path / f"source{extension}", Checkpoint(state, arch, {}))
    for src, dst in itertools.permutations(EXTENSIONS, 2):
        target = tmp_path / f"{src}_to_{dst}{EXTENSIONS[dst]}"
        written = convert(str(tmp_path / f"source{EXTENSIONS[src]}"), str(target), log=quiet)
        assert written.arch == arch and written.model_kwargs["n_classes"] == 5
        assert_same_state(read_checkpoint(str(target)).state, state)
    # Written atomically: no temporary files left behind.
    assert not [name for name in os.listdir(tmp_path) if ".partial" in name]


@pytest.mark.parametrize("arch", ARCHS)
def test_pth_pdparams_ckpt_pth_round_trip_is_bit_exact(tmp_path, arch):
    state = seeded_state(arch, n_classes=3, **narrow(arch, 0.0625))
    write_checkpoint(str(tmp_path / "a.pth"), Checkpoint(state, arch, {}))
    convert(str(tmp_path / "a.pth"), str(tmp_path / "b.pdparams"), log=quiet)
    convert(str(tmp_path / "b.pdparams"), str(tmp_path / "c.ckpt"), log=quiet)
    convert(str(tmp_path / "c.ckpt"), str(tmp_path / "d.pth"), log=quiet)
    back = torch.load(tmp_path / "d.pth", weights_only=True)
    assert list(back) == list(state)
    for name, value in state.items():
        assert back[name].numpy().tobytes() == value.tobytes(), name


def test_files_load_into_each_framework_with_its_own_loader(tmp_path):
    kwargs = dict(widen_factor=0.125, n_classes=5)
    state = seeded_state("resnet18", **kwargs)
    write_checkpoint(str(tmp_path / "r.pth"), Checkpoint(state, "resnet18", kwargs))
    convert(str(tmp_path / "r.pth"), str(tmp_path / "r.pdparams"), log=quiet)
    convert(str(tmp_path / "r.pth"), str(tmp_path / "r.ckpt"), log=quiet)

    torch_model = build_torch_model("resnet18", **kwargs)
    torch_model.load_state_dict(torch.load(tmp_path / "r.pth", weights_only=True))
    assert_same_state(torch_state(torch_model), state)

    paddle_file = paddle.load(str(tmp_path / "r.pdparams"))
    assert paddle_file["fc.weight"].shape == [state["fc.weight"].shape[1], 5]  # Paddle Linear is (in, out)
    assert "bn1._mean" in paddle_file and "bn1.running_mean" not in paddle_file
    paddle_model = build_paddle_model("resnet18", **kwargs)
    missing, unexpected = paddle_model.set_state_dict(paddle_file)
    assert not missing and not unexpected
    assert_same_state(paddle_state(paddle_model), state)

    mindspore_model = build_mindspore_model("resnet18", **kwargs)
    not_loaded = mindspore.load_param_into_net(mindspore_model, mindspore.load_checkpoint(str(tmp_path / "r.ckpt")))
    assert not any(not_loaded)
    assert_same_state(mindspore_state(mindspore_model), state)


@pytest.mark.parametrize("arch", ["resnet18", "r2plus1d_18", "resnext50", "densenet121"])
def test_kenshohara_layout(tmp_path, capsys, arch):
    source = tmp_path / "save_200.pth"
    model = write_kenshohara_pth(str(source), arch, n_classes=5, data_parallel=True, **CASES[arch])
    checkpoint = read_checkpoint(str(source))
    assert (checkpoint.layout, checkpoint.arch, checkpoint.epoch) == ("kenshohara", arch, 1)
    assert checkpoint.dropped == ["optimizer", "scheduler"]
    assert_same_state(checkpoint.state, torch_state(model))

    convert_main([str(source), str(tmp_path / "r.pdparams")])
    assert "dropping training state" in capsys.readouterr().out
    convert_main([str(tmp_path / "r.pdparams"), str(tmp_path / "again.pth"), "--layout-out", "kenshohara"])
    again = torch.load(tmp_path / "again.pth", weights_only=True)
    assert set(again) == {"epoch", "arch", "state_dict"}
    assert again["arch"] == {"resnet18": "resnet-18", "r2plus1d_18": "resnet2p1d-18", "resnext50": "resnext-50",
                             "densenet121": "densenet-121"}[arch]
    reloaded = build_torch_model(arch, n_classes=5, **CASES[arch])
    reloaded.load_state_dict(again["state_dict"])  # as his main.py resume() does
    assert_same_state(torch_state(reloaded), torch_state(model))


def test_piergiaj_and_ms_zoo_i3d_layouts(tmp_path):
    # pytorch-i3d's published .pt files predate the zip format: write that one.
    model = write_piergiaj_pt(str(tmp_path / "new.pt"), n_classes=5, widen_factor=0.125)
    torch.save(torch.load(tmp_path / "new.pt"), tmp_path / "rgb_imagenet.pt", _use_new_zipfile_serialization=False)
    expected = torch_state(model)
    checkpoint = read_checkpoint(str(tmp_path / "rgb_imagenet.pt"))
    assert (checkpoint.layout, checkpoint.arch) == ("piergiaj", "i3d")
    assert_same_state(checkpoint.state, expected)

    convert(str(tmp_path / "rgb_imagenet.pt"), str(tmp_path / "rgb_imagenet.ckpt"), layout_out="ms-zoo-i3d", log=quiet)
    zoo = mindspore.load_checkpoint(str(tmp_path / "rgb_imagenet.ckpt"))
    assert sorted(zoo) == sorted(zoo_name(name) for name in expected)
    assert "Conv3d_1a_7x7_bn.bn2d.gamma" in zoo and "Mixed_3b_b0.conv3d.weight" in zoo and "logits_conv3d.bias" in zoo
    for name, value in expected.items():
        np.testing.assert_array_equal(zoo[zoo_name(name)].asnumpy(), value)

    # A zoo file written by the zoo's own script reads back, and converts to a piergiaj .pt.
    mindspore.save_checkpoint([{"name": zoo_name(name), "data": mindspore.Tensor(value)}
                               for name, value in expected.items()], str(tmp_path / "zoo.ckpt"))
    assert read_checkpoint(str(tmp_path / "zoo.ckpt")).layout == "ms-zoo-i3d"
    convert(str(tmp_path / "zoo.ckpt"), str(tmp_path / "back.pt"), layout_out="piergiaj", log=quiet)
    reloaded = build_torch_model("i3d", n_classes=5, widen_factor=0.125)
    reloaded.load_state_dict(torch.load(tmp_path / "back.pt", weights_only=True))
    assert_same_state(torch_state(reloaded), expected)


def test_paddle_3dresnets_layout(tmp_path):
    state = seeded_state("resnet50", **CASES["resnet50"])
    # As the port's model/convert_to_paddle.py: Paddle names, fc transposed, a bare pickled OrderedDict.
    port = OrderedDict()
    for name, value in state.items():
        name = name.replace("running_mean", "_mean").replace("running_var", "_variance")
        port[name] = value.T if name == "fc.weight" else value
    with open(tmp_path / "paddle_resnet50_mk.pdparams", "wb") as file:
        pickle.dump(port, file)
    checkpoint = read_checkpoint(str(tmp_path / "paddle_resnet50_mk.pdparams"))
    assert (checkpoint.layout, checkpoint.arch) == ("paddle-3dresnets", "resnet50")
    assert_same_state(checkpoint.state, state)

    convert(str(tmp_path / "paddle_resnet50_mk.pdparams"), str(tmp_path / "r50.pth"), log=quiet)
    convert(str(tmp_path / "r50.pth"), str(tmp_path / "out.pdparams"), layout_out="paddle-3dresnets", log=quiet)
    written = safe_pickle.load(str(tmp_path / "out.pdparams"))
    assert isinstance(written, OrderedDict) and list(written) == list(port)
    assert all(np.array_equal(written[name], port[name]) for name in port)
    assert sorted(paddle.load(str(tmp_path / "out.pdparams"))) == sorted(port)


def test_layouts_are_checked_against_format_and_architecture(tmp_path):
    write_checkpoint(str(tmp_path / "r18.pth"), Checkpoint(seeded_state("resnet18", **CASES["resnet18"]), "resnet18", {}))
    with pytest.raises(ValueError, match="'ms-zoo-i3d' is a .ckpt layout"):
        convert(str(tmp_path / "r18.pth"), str(tmp_path / "x.pth"), layout_out="ms-zoo-i3d", log=quiet)
    with pytest.raises(ValueError, match="holds i3d, i3d_mszoo, not resnet18"):
        convert(str(tmp_path / "r18.pth"), str(tmp_path / "x.ckpt"), layout_out="ms-zoo-i3d", log=quiet)
    with pytest.raises(ValueError, match="cannot tell the checkpoint format"):
        convert(str(tmp_path / "r18.pth"), str(tmp_path / "x.weights"), log=quiet)
    assert not os.path.exists(tmp_path / "x.ckpt")


def test_mismatched_checkpoint_lists_missing_unexpected_and_mis_shaped_keys(tmp_path, capsys):
    state = seeded_state("resnet18", **CASES["resnet18"])
    del state["layer2.1.bn2.running_var"]
    state["layer5.0.conv1.weight"] = np.zeros((1, 1, 1, 1, 1), np.float32)
    state["layer3.0.conv2.weight"] = state["layer3.0.conv2.weight"][:, :, :1]
    torch.save({name: torch.from_numpy(value) for name, value in state.items()}, tmp_path / "bad.pth")
    with pytest.raises(StateDictMismatch) as error:
        convert(str(tmp_path / "bad.pth"), str(tmp_path / "bad.pdparams"), log=quiet)
    assert error.value.missing == ["layer2.1.bn2.running_var"]
    assert error.value.unexpected == ["layer5.0.conv1.weight"]
    assert [name for name, _, _ in error.value.mis_shaped] == ["layer3.0.conv2.weight"]
    assert not os.path.exists(tmp_path / "bad.pdparams")

    # A resnet18 file named resnet50: the CLI fails naming the file and the offending keys.
    write_checkpoint(str(tmp_path / "r18.pth"), Checkpoint(seeded_state("resnet18", **CASES["resnet18"]), "resnet18", {}))
    with pytest.raises(SystemExit) as exit_info:
        convert_main([str(tmp_path / "r18.pth"), str(tmp_path / "r50.ckpt"), "--arch", "resnet50"])
    message = str(exit_info.value.code)
    assert "r18.pth" in message and "missing keys" in message and "layer1.0.conv3.weight" in message
    assert not os.path.exists(tmp_path / "r50.ckpt")


def test_drop_head_replaces_the_classifier(tmp_path):
    state = seeded_state("i3d", n_classes=5, **CASES["i3d"])
    write_checkpoint(str(tmp_path / "i3d.pth"), Checkpoint(state, "i3d", {}))
    with pytest.raises(ValueError, match="has 5 classes, not 101; add --drop-head"):
        convert(str(tmp_path / "i3d.pth"), str(tmp_path / "ucf.ckpt"), n_classes=101, log=quiet)
    convert(str(tmp_path / "i3d.pth"), str(tmp_path / "ucf.ckpt"), n_classes=101, drop_head=True, log=quiet)
    tuned = read_checkpoint(str(tmp_path / "ucf.ckpt"))
    assert tuned.model_kwargs["n_classes"] == 101
    weight = tuned.state["logits.conv3d.weight"]
    assert weight.shape == (101, *state["logits.conv3d.weight"].shape[1:])
    assert 0 < np.abs(weight).max() <= 1 / np.sqrt(weight.shape[1])  # PyTorch's default init bound
    body = [name for name in state if not name.startswith("logits.")]
    assert_same_state({name: tuned.state[name] for name in body}, {name: state[name] for name in body})


def test_mindspore_training_state_is_dropped_with_a_notice(tmp_path):
    state = seeded_state("resnet18", **CASES["resnet18"])
    params = [{"name": name, "data": mindspore.Tensor(value)} for name, value in state.items()]
    params += [{"name": "moments.conv1.weight", "data": mindspore.Tensor(state["conv1.weight"])},
               {"name": "learning_rate", "data": mindspore.Tensor(np.float32(0.1))},
               {"name": "global_step", "data": mindspore.Tensor(np.int32(7))}]
    mindspore.save_checkpoint(params, str(tmp_path / "train.ckpt"))
    notices = []
    convert(str(tmp_path / "train.ckpt"), str(tmp_path / "r.npz"), log=notices.append)
    assert any("moments.conv1.weight, learning_rate, global_step" in notice for notice in notices)
    assert_same_state(read_checkpoint(str(tmp_path / "r.npz")).state, state)


def test_mindspore_engine_checkpoint_gives_its_arch_and_epoch_and_drops_the_rest(tmp_path):
    # What the MindSpore engine's save writes: parameters, `optimizer.*` state, text entries.
    state = seeded_state("resnet18", **CASES["resnet18"])
    params = [{"name": name, "data": mindspore.Tensor(value)} for name, value in to_mindspore(state).items()]
    params += [{"name": "optimizer.accum.conv1.weight", "data": mindspore.Tensor(state["conv1.weight"])},
               {"name": "optimizer.global_step", "data": mindspore.Tensor(np.int32(7))}]
    mindspore.save_checkpoint(params, str(tmp_path / "save_3.ckpt"),
                              append_dict={"arch": "resnet18", "epoch": "3", "scheduler": "{}", "config": "{}"})
    notices = []
    written = convert(str(tmp_path / "save_3.ckpt"), str(tmp_path / "r.npz"), log=notices.append)
    assert (written.arch, written.epoch) == ("resnet18", 3)
    assert any("optimizer.accum.conv1.weight, optimizer.global_step, arch, epoch, scheduler, config" in notice
               for notice in notices)
    assert_same_state(read_checkpoint(str(tmp_path / "r.npz")).state, state)


class CreatesMarker:
    """A pickle payload that runs code when unpickled."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return os.makedirs, (self.marker,)


def test_pickles_that_would_run_code_are_refused(tmp_path):
    with open(tmp_path / "evil.pdparams", "wb") as file:
        pickle.dump({"conv1.weight": np.zeros(3, np.float32), "x": CreatesMarker(str(tmp_path / "ran"))}, file)
    torch.save({"conv1.weight": torch.zeros(3), "x": CreatesMarker(str(tmp_path / "ran"))}, tmp_path / "evil.pth")
    for name in ("evil.pdparams", "evil.pth"):
        with pytest.raises(SystemExit) as exit_info:
            convert_main([str(tmp_path / name), str(tmp_path / "out.npz")])
        assert f"{name}: refusing to load" in str(exit_info.value.code) and "makedirs" in str(exit_info.value.code)
        assert not os.path.exists(tmp_path / "ran")
    # The payload is live: plain pickle would have run it.
    with open(tmp_path / "evil.pdparams", "rb") as file:
        pickle.load(file)
    assert os.path.exists(tmp_path / "ran")


def test_files_that_are_no_checkpoint_are_named_not_tracebacks(tmp_path):
    write_kenshohara_pth(tmp_path / "good.pth", "resnet10", 3, widen_factor=0.125)
    data = (tmp_path / "good.pth").read_bytes()
    (tmp_path / "cut.pth").write_bytes(data[:len(data) // 2])
    (tmp_path / "text.pth").write_text("hello world")
    (tmp_path / "short.pth").write_text("junk")  # torch.load: struct.error
    for name in ("cut.pth", "text.pth", "short.pth"):
        with pytest.raises(SystemExit) as exit_info:
            convert_main([str(tmp_path / name), str(tmp_path / "out.npz")])
        assert f"{name}: not a readable PyTorch file" in str(exit_info.value.code)
    assert not os.path.exists(tmp_path / "out.npz")


def test_help_documents_formats_layouts_and_examples(capsys):
    with pytest.raises(SystemExit):
        convert_main(["--help"])
    help_text = capsys.readouterr().out
    for word in ("--layout-out", "kenshohara", "ms-zoo-i3d", "paddle-3dresnets", "--verify", "examples:"):
        assert word in help_text


@pytest.mark.parametrize("arch, source_suffix, target", [
    ("resnet18", ".pth", ".pdparams"),  # torch vs paddle
    ("resnet50", ".pth", ".ckpt"),  # torch vs mindspore
    ("r2plus1d_18", ".pdparams", ".ckpt"),  # paddle vs mindspore
    ("i3d", ".pt", ".ckpt"),  # torch vs mindspore, zoo layout
])
def test_verify_passes_across_frameworks(tmp_path, capsys, arch, source_suffix, target):
    community = tmp_path / ("community.pt" if arch == "i3d" else "community.pth")
    if arch == "i3d":
        write_piergiaj_pt(str(community), n_classes=5, **CASES[arch])
    else:
        write_kenshohara_pth(str(community), arch, n_classes=5, **CASES[arch])
    source = tmp_path / f"source{source_suffix}"
    if source.suffix != community.suffix:
        convert(str(community), str(source), log=quiet)
    else:
        source = community
    layout = ["--layout-out", "ms-zoo-i3d"] if arch == "i3d" else []
    convert_main([str(source), str(tmp_path / f"target{target}"), "--verify", *CLIP, *layout])
    report = capsys.readouterr().out
    max_abs = float(report.split("max abs difference ")[1].split(",")[0])
    threshold = float(report.split("threshold ")[1].rstrip(")\n"))
    assert 0 <= max_abs <= threshold <= 1e-3


def test_verify_fails_when_a_weight_is_corrupted(tmp_path):
    write_kenshohara_pth(str(tmp_path / "r18.pth"), "resnet18", n_classes=5, **CASES["resnet18"])
    convert(str(tmp_path / "r18.pth"), str(tmp_path / "r18.pdparams"), log=quiet)
    saved = safe_pickle.load(str(tmp_path / "r18.pdparams"))
    saved["layer4.1.bn2.weight"] = saved["layer4.1.bn2.weight"] * 2
    with open(tmp_path / "r18.pdparams", "wb") as file:
        pickle.dump(saved, file, protocol=4)
    result = verify(str(tmp_path / "r18.pth"), str(tmp_path / "r18.pdparams"), clip_size=(8, 32, 32))
    assert not result.passed and result.max_abs > 10 * result.threshold


MEMORY_PROBE = """
import resource, sys
sys.path.insert(0, {root!r})
from convert import convert
from core.checkpoints.formats import format_of
src, dst = sys.argv[1:]
if "pth" in (format_of(src).name, format_of(dst).name):
    import torch
baseline = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
convert(src, dst, log=lambda *_: None)
print(baseline * 1024, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024)
"""


def test_converting_a_full_size_resnet50_peaks_below_three_times_the_file(tmp_path):
    state = seeded_state("resnet50")
    write_checkpoint(str(tmp_path / "r50.pth"), Checkpoint(state, "resnet50", {}))
    del state
    assert os.path.getsize(tmp_path / "r50.pth") > 170 * 2 ** 20
    probe = MEMORY_PROBE.format(root=ROOT)

    def peak(src, dst):
        # Linux carries the peak RSS of the process that forks into the exec'd child, so pytest's own
        # size would show; a small intermediate process starts the probe instead.
        spawn = "import subprocess, sys; sys.exit(subprocess.call(sys.argv[1:]))"
        result = subprocess.run([sys.executable, "-c", spawn, sys.executable, "-c", probe, str(tmp_path / src),
                                 str(tmp_path / dst)], capture_output=True, text=True, check=True)
        return [int(number) for number in result.stdout.split()]

    # .ckpt is read and written without MindSpore, so every direction counts the whole process.
    for src, dst in (("r50.pth", "r50.pdparams"), ("r50.pdparams", "r50.ckpt"), ("r50.ckpt", "back.pth"),
                     ("r50.ckpt", "back.pdparams")):
        size = os.path.getsize(tmp_path / src)
        baseline, top = peak(src, dst)
        assert top - baseline > size / 2, (src, dst)  # the measurement sees the weights...
        assert top < 3 * size, (src, dst)  # ...and the whole process stays below three file sizes
