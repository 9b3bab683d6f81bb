"""ip-CSN and ir-CSN as MMAction2 builds them (core/archs/csn.py): its released files' layout and numbers.

Reference: open-mmlab/mmaction2 (commit 4d6c934) mmaction/models/backbones/resnet3d_csn.py on resnet3d.py, and
heads/i3d_head.py, configured as configs/_base_/models/ircsn_r152.py (with_pool2=False, zero_init_residual=False).
A one-off check (not part of the project: mmcv's ConvModule and mmengine's registries stubbed, the reference's
own files executed) built its ResNet3dCSN + I3DHead for every depth in both modes: its state-dict names, in
order, equal ours behind `backbone.` / `cls_head.`, and with the same random weights its logits on 8 x 112 x
112 and 9 x 33 x 37 clips equal our torch model's exactly (difference 0). The tests here hold its parameter
counts, read its checkpoint format in every backend, and train from configs/synthetic_csn.yaml.
"""
import os
import subprocess
import sys
from collections import OrderedDict

import numpy as np
import pytest
import torch

from backends import BACKENDS, load, native_format
from convert import convert, infer_arch, read_checkpoint
from core import archs
from core.checkpoints import read_state
from core.config import load_config
from core.engine import weights_report
from core.state_dict import StateDictMismatch
from core.training import read_log
from tests._training_data import write_colour_dataset
from tests.community import random_model
from tests.conftest import ROOT


def parameter_count(arch, **kwargs):
    return sum(int(np.prod(shape)) for name, shape in archs.expected_shapes(arch, **kwargs).items()
               if not name.endswith(("running_mean", "running_var")))


@pytest.mark.parametrize("arch, count", [
    ("ip_csn_152", 33_016_592),  # MMAction2's README: ResNet152 (IP) 33.02M
    ("ir_csn_152", 29_703_568),  # ResNet152 (IR) 29.70M
    ("ir_csn_50", 13_131_152),  # ResNet50 (IR) 13.13M
])
def test_parameter_counts_are_mmaction2s(arch, count):
    assert parameter_count(arch) == count


def test_the_tree_is_mmaction2s():
    ip, ir = archs.expected_shapes("ip_csn_50"), archs.expected_shapes("ir_csn_50")
    assert ip["conv1.conv.weight"] == (64, 3, 3, 7, 7) and ip["conv1.bn.running_var"] == (64,)
    assert ip["layer1.0.conv2.0.conv.weight"] == (64, 64, 1, 1, 1)  # ip: 1x1x1, then the depthwise conv
    assert ip["layer1.0.conv2.1.conv.weight"] == (64, 1, 3, 3, 3)
    assert ir["layer1.0.conv2.0.conv.weight"] == (64, 1, 3, 3, 3) and "layer1.0.conv2.1.conv.weight" not in ir
    assert ir["layer1.0.downsample.conv.weight"] == (256, 64, 1, 1, 1) and "layer1.1.downsample.bn.bias" not in ir
    assert ir["layer4.2.conv3.conv.weight"] == (2048, 512, 1, 1, 1) and ir["fc_cls.weight"] == (400, 2048)
    model = load("torch", "models").build_model("ip_csn_50", widen_factor=0.125)
    block = model.layer2[0]
    assert block.conv2[1].conv.stride == (2, 2, 2) and block.conv2[1].conv.groups == 16  # 128 planes / 8
    assert block.downsample.conv.stride == (2, 2, 2) and block.conv1.conv.stride == (1, 1, 1)
    assert model.conv1.conv.stride == (1, 2, 2) and model.conv1.conv.padding == (1, 3, 3)
    assert (model.maxpool.kernel_size, model.maxpool.stride, model.maxpool.padding) == ((1, 3, 3), (1, 2, 2),
                                                                                        (0, 1, 1))
    assert {(m.eps, m.momentum) for m in model.modules() if isinstance(m, torch.nn.BatchNorm3d)} == {(1e-3, 0.1)}
    assert model.dropout.p == 0.5 and not [m for m in model.modules() if getattr(m, "bias", None) is not None
                                           and m is not model.fc_cls and not isinstance(m, torch.nn.BatchNorm3d)]
    # Time halves in layer2..4 only, space in conv1, maxpool and layer2..4: (8, 64, 64) -> (1, 2, 2) before the
    # head, as MMAction2's (its tests/models/backbones/test_resnet3d_csn.py: 6 x 64 x 64 -> 1 x 2 x 2).
    with torch.no_grad():
        features = model.layer4(model.layer3(model.layer2(model.layer1(model.maxpool(model.conv1(
            torch.zeros(1, 3, 8, 64, 64)))))))
    assert features.shape == (1, 256, 1, 2, 2)


@pytest.mark.parametrize("arch", [arch for arch, spec in archs.SPECS.items() if spec.family == "csn"])
def test_files_tell_ip_from_ir_and_the_depths_apart(arch):
    kwargs = dict(widen_factor=0.125, n_classes=7, n_input_channels=2)
    assert infer_arch(archs.expected_shapes(arch, **kwargs)) == (arch, kwargs)


def write_mmaction2_pth(path, arch, **kwargs):
    """An MMAction2 checkpoint of `arch`: {'meta', 'state_dict'}, `backbone.*` and `cls_head.fc_cls.*` with
    num_batches_tracked (mmengine's CheckpointHook; `optimizer` and `message_hub` left out as its releases do)."""
    model = random_model(arch, seed=2, **kwargs)
    with torch.random.fork_rng():
        torch.manual_seed(2)
        model.fc_cls.weight.data.normal_(0.0, 1.0)  # not I3DHead's 0.01: logits far from 0
    state = OrderedDict((f"{'cls_head' if name.startswith('fc_cls.') else 'backbone'}.{name}", value)
                        for name, value in model.state_dict().items())
    torch.save({"meta": {"epoch": 58, "mmaction_version": "1.2.0"}, "state_dict": state}, path)
    return model


# ir-CSN-50 on flow (2 channels, as MMAction2's in_channels allows).
FILES = {"ip_csn_50": ("ip_csn_50", 3), "ir_csn_50 flow": ("ir_csn_50", 2)}


@pytest.mark.parametrize("case", FILES)
def test_mmaction2_file_loads_as_pretrain_path_resume_path_and_through_convert_in_every_backend(tmp_path, case):
    arch, channels = FILES[case]
    path = str(tmp_path / "csn_kinetics400.pth")
    model = write_mmaction2_pth(path, arch, n_classes=4, widen_factor=0.125, n_input_channels=channels)
    checkpoint = read_checkpoint(path)
    assert (checkpoint.layout, checkpoint.arch) == ("mmaction2", arch)
    assert checkpoint.model_kwargs == dict(widen_factor=0.125, n_classes=4, n_input_channels=channels)
    assert "backbone.conv1.conv.weight" in torch.load(path, weights_only=True)["state_dict"]

    clip = np.random.default_rng(3).standard_normal((2, channels, 5, 33, 37)).astype(np.float32)
    with torch.no_grad():
        reference = model(torch.from_numpy(clip)).numpy()
    assert np.abs(reference).max() > 0.1
    overrides = archs.get(arch).config_overrides(dict(widen_factor=0.125, n_input_channels=channels))
    for backend in BACKENDS:
        config = load_config(None, overrides + [f"pretrain_path={path}", "n_pretrain_classes=4", "n_classes=4",
                                                "device=cpu"], ())
        engine = load(backend, "engine").Engine(config)
        logits = engine.interop.forward(engine.model, clip)
        assert np.abs(logits - reference).max() <= 1e-4 * max(1.0, np.abs(reference).max()), backend

        # evaluate --resume_path: the predictor's engine loads the file strictly.
        config = load_config(None, overrides + [f"resume_path={path}", "n_classes=4", "device=cpu"], ())
        engine = load(backend, "engine").Engine(config, training=False)
        logits = engine.interop.forward(engine.model, clip)
        assert np.abs(logits - reference).max() <= 1e-4 * max(1.0, np.abs(reference).max()), backend

        converted = str(tmp_path / f"csn.{native_format(backend)}")
        convert(path, converted, log=lambda *_: None)
        interop = load(backend, "interop")
        net = load(backend, "models").build_model(arch, n_classes=4, widen_factor=0.125, n_input_channels=channels)
        interop.load_numpy_state(net, read_checkpoint(converted).state)
        logits = interop.forward(net, clip)
        assert np.abs(logits - reference).max() <= 1e-4 * max(1.0, np.abs(reference).max()), backend


def test_written_in_the_mmaction2_layout_the_head_is_cls_head(tmp_path):
    source = str(tmp_path / "ir.pth")
    write_mmaction2_pth(source, "ir_csn_101", n_classes=3, widen_factor=0.0625)
    convert(source, str(tmp_path / "ir.ckpt"), log=lambda *_: None)
    convert(str(tmp_path / "ir.ckpt"), str(tmp_path / "again.pth"), layout_out="mmaction2", log=lambda *_: None)
    again = torch.load(tmp_path / "again.pth", weights_only=True)
    original = torch.load(source, weights_only=True)["state_dict"]
    assert sorted(again["state_dict"]) == sorted(k for k in original if not k.endswith("num_batches_tracked"))
    assert [k for k in again["state_dict"] if k.startswith("cls_head.")] == ["cls_head.fc_cls.weight",
                                                                            "cls_head.fc_cls.bias"]
    for name, value in again["state_dict"].items():
        assert torch.equal(value, original[name]), name


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    root = tmp_path_factory.mktemp("colours")
    write_colour_dataset(str(root))
    return root


@pytest.mark.parametrize("backend", BACKENDS)
def test_csn_trains_from_its_config(backend, data, tmp_path):
    """configs/synthetic_csn.yaml (ir-CSN-50), shrunk to the colour task (3 classes, 4 x 32 x 32 clips, width 1/8)
    with the whole training set as one fixed batch (centre crops) and Adam at 3e-4: its loss falls by more than 8%
    within 6 steps in every backend. Not SGD: the stem's and the depthwise convs' gradients are 10-100 times the
    others' (each of their weights sees a whole channel), and SGD at 1e-4 to 5e-2 (momentum 0.9) did not lower the
    loss steadily here; MMAction2 trains CSNs with its gradients clipped at norm 40."""
    result = tmp_path / backend
    values = [f"video_path={data / 'frames'}", f"annotation_path={data / 'annotation.json'}", f"result_path={result}",
              "n_classes=3", "resnet_widen_factor=0.125", "sample_size=32", "sample_duration=4", "n_epochs=6",
              "batch_size=12", "train_crop=center", "train_t_crop=center", "n_threads=0", "checkpoint=6",
              "no_val=true", "device=cpu", "optimizer=adam", "learning_rate=0.0003", "lr_scheduler=multistep",
              "multistep_milestones=[100]", "dropout=0"]
    command = [sys.executable, "-m", f"backends.{backend}.train", "--config", os.path.join(ROOT, "configs",
                                                                                           "synthetic_csn.yaml"),
               *[arg for value in values for arg in ("--set", value)]]
    done = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "training ir_csn_50" in done.stdout
    losses = [float(row["loss"]) for row in read_log(os.path.join(result, "train.log"))]
    # torch falls from 1.14 to 0.96 at best, Paddle from 1.22 to 1.03 (each draws its own initial weights).
    assert len(losses) == 6 and np.isfinite(losses).all() and min(losses[1:]) < 0.92 * losses[0], losses
    state = read_state(os.path.join(result, f"save_6.{native_format(backend)}"))
    assert {name: value.shape for name, value in state.items()} == archs.expected_shapes(
        "ir_csn_50", n_classes=3, widen_factor=0.125)


def test_a_backbone_only_file_fine_tunes_with_a_fresh_head_in_every_backend(tmp_path, capsys):
    """MMAction2 fine-tunes CSN from IG-65M files that hold the backbone alone (its config's
    `backbone.pretrained`, loaded into the backbone: names without `backbone.`, no `fc_cls`). As pretrain_path
    they give the backbone's features exactly, the head is the model's own, and the log says so; a strict load
    (evaluate's resume_path) still refuses the missing head."""
    model = random_model("ir_csn_50", n_classes=4, widen_factor=0.125)
    path = str(tmp_path / "ircsn_ig65m_backbone.pth")
    torch.save({name: value for name, value in model.state_dict().items() if not name.startswith("fc_cls.")}, path)
    checkpoint = read_checkpoint(path)
    assert (checkpoint.arch, checkpoint.model_kwargs["widen_factor"]) == ("ir_csn_50", 0.125)
    assert sorted(checkpoint.state) == sorted(name for name in model.state_dict()
                                              if not name.startswith("fc_cls.") and "num_batches" not in name)

    overrides = archs.get("ir_csn_50").config_overrides(dict(widen_factor=0.125))
    for backend in BACKENDS:
        config = load_config(None, overrides + [f"pretrain_path={path}", "n_classes=7", "device=cpu"], ())
        engine = load(backend, "engine").Engine(config)
        state = engine.interop.to_numpy_state(engine.model)
        for name, value in checkpoint.state.items():
            np.testing.assert_array_equal(state[name], value)
        assert state["fc_cls.weight"].shape == (7, 256)
    assert weights_report(config)[:2] == [
        f"pretrained weights: {path} (layout neutral, ir_csn_50, no classifier)",
        "head fc_cls: not in the file (a backbone), freshly initialised (7 classes)"]
    config = load_config(None, overrides + [f"resume_path={path}", "n_classes=7", "device=cpu"], ())
    with pytest.raises(StateDictMismatch, match="missing keys \\(2\\): fc_cls.weight, fc_cls.bias"):
        load("torch", "engine").Engine(config, training=False)
