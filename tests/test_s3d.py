"""S3D as kylemin/S3D: its released file's layout, its operations, and training from configs/s3d.yaml."""
import os
import subprocess
import sys
from collections import OrderedDict

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from backends import BACKENDS, load, native_format
from convert import read_checkpoint
from core.checkpoints import read_state
from core.training import read_log
from tests._training_data import write_colour_dataset
from tests.community import random_model
from tests.conftest import ROOT

CONFIG = os.path.join(ROOT, "configs", "s3d.yaml")


def test_kylemin_file_loads_as_is_and_the_model_is_his():
    """S3D_kinetics400.pt's names (with DataParallel's `module.`, which his main.py strips), and the head of
    his model.py: avg_pool3d((2, H, W), stride 1) -> fc -> mean over time."""
    model = random_model("s3d", seed=1, n_classes=5, widen_factor=0.125)
    state = OrderedDict(("module." + k, v) for k, v in model.state_dict().items())
    assert {"module.base.0.conv_s.weight", "module.base.0.bn_t.running_var", "module.base.2.conv.weight",
            "module.base.5.branch1.1.conv_t.weight", "module.base.15.branch3.1.bn.bias", "module.fc.0.weight",
            "module.fc.0.bias"} <= set(state)
    assert model.base[0].bn_s.eps == 1e-3 and model.base[0].bn_s.momentum == 0.001
    assert model.base[0].conv_s.padding == (0, 3, 3) and model.base[0].conv_t.stride == (2, 1, 1)
    assert model.base[13].padding == (0, 0, 0) and model.base[7].padding == (1, 1, 1)
    assert sum(p.numel() for p in random_model("s3d").parameters()) == 8_320_048

    clip = torch.from_numpy(np.random.default_rng(2).uniform(-1, 1, (2, 3, 16, 64, 64)).astype(np.float32))
    with torch.no_grad():
        logits = model(clip)
        features = model.base(clip)
        assert features.shape[2:] == (2, 2, 2)
        reference = model.fc(F.avg_pool3d(features, (2, 2, 2), stride=1)).view(2, 5, -1).mean(2)
    assert reference.abs().max() > 0.05
    torch.testing.assert_close(logits, reference)


def test_kylemin_layout_is_detected(tmp_path):
    model = random_model("s3d", seed=1, n_classes=5, widen_factor=0.125)
    torch.save(OrderedDict(("module." + k, v) for k, v in model.state_dict().items()), tmp_path / "S3D_k.pt")
    checkpoint = read_checkpoint(str(tmp_path / "S3D_k.pt"))
    assert (checkpoint.layout, checkpoint.arch) == ("kylemin", "s3d")
    assert checkpoint.model_kwargs == dict(widen_factor=0.125, n_classes=5, n_input_channels=3)
    for name, value in model.state_dict().items():
        if not name.endswith("num_batches_tracked"):
            np.testing.assert_array_equal(checkpoint.state[name], value.numpy(), err_msg=name)


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    root = tmp_path_factory.mktemp("colours")
    write_colour_dataset(str(root))
    return root


@pytest.mark.parametrize("backend", BACKENDS)
def test_s3d_trains_from_its_config(backend, data, tmp_path):
    """configs/s3d.yaml, shrunk to the colour task (3 classes, 8 x 32 x 32 clips, width 1/8), 5 epochs. No
    validation: kylemin's BatchNorm momentum (0.001) leaves the running statistics near their start for
    hundreds of steps, so eval-mode outputs mean nothing this early."""
    result = tmp_path / backend
    values = [f"video_path={data / 'frames'}", f"annotation_path={data / 'annotation.json'}", f"result_path={result}",
              "n_classes=3", "resnet_widen_factor=0.125", "sample_size=32", "sample_duration=8", "n_epochs=5",
              "batch_size=4", "train_crop=center", "n_threads=0", "checkpoint=5", "learning_rate=0.01",
              "no_val=true", "device=cpu"]
    command = [sys.executable, "-m", f"backends.{backend}.train", "--config", CONFIG,
               *[arg for value in values for arg in ("--set", value)]]
    done = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    losses = [float(row["loss"]) for row in read_log(os.path.join(result, "train.log"))]
    # One of the last two epochs (not just the last): BatchNorm momentum 0.001 makes five epochs' losses noisy.
    assert len(losses) == 5 and min(losses[-2:]) < 0.8 * losses[0], losses
    checkpoint = os.path.join(result, f"save_5.{native_format(backend)}")
    state = read_state(checkpoint)
    assert state["fc.0.weight"].shape == (3, 128, 1, 1, 1) and "base.15.branch3.1.bn.running_var" in state


def vcp_name(name):
    """video_classification_pytorch's name of an s3d_tf parameter, spelled as its Unit3D and STConv3d register
    their modules (utils/utils_3d.py: `<scope>_conv`, `<scope>_bn`, `<scope>_s_conv` / `<scope>_t_conv` holding
    Unit3Ds of scope 'unit_3d'; models/S3D/Inceptionv1_S3D.py: scope 's3d' + endpoint + '/Branch_k/...')."""
    branches = {"b0": "Branch_0/Conv3d_0a_1x1x1", "b1a": "Branch_1/Conv3d_0a_1x1x1", "b1b": "Branch_1/Conv3d_0b_3x3x3",
                "b2a": "Branch_2/Conv3d_0a_1x1x1", "b2b": "Branch_2/Conv3d_0b_3x3x3", "b3b": "Branch_3/Conv3d_0b_1x1x1"}
    *modules, layer, leaf = name.split(".")
    layer = {"conv3d": "conv", "bn": "bn"}[layer]
    if modules == ["logits"]:
        return f"logits.logits_{layer}.{leaf}"
    endpoint, rest = modules[0], modules[1:]
    path, scope = endpoint, f"s3d{endpoint}"
    if rest and rest[0] in branches:
        path, scope, rest = f"{endpoint}.{rest[0]}", f"{scope}/{branches[rest[0]]}", rest[1:]
    if rest:
        return f"{path}.{scope}_{'s' if rest[0] == 'spatial' else 't'}_conv.unit_3d_{layer}.{leaf}"
    return f"{path}.{scope}_{layer}.{leaf}"


def test_video_classification_pytorch_s3d_reads_as_s3d_tf(tmp_path):
    """Its S3D is I3D with separable units (TF "same" padding), not kylemin's (symmetric padding): arch s3d_tf."""
    model = random_model("s3d_tf", seed=3, n_classes=5, widen_factor=0.125)
    saved = OrderedDict(("module." + vcp_name(k), v) for k, v in model.state_dict().items())
    assert {"module.Conv3d_1a_7x7.s3dConv3d_1a_7x7_s_conv.unit_3d_conv.weight",
            "module.Conv3d_1a_7x7.s3dConv3d_1a_7x7_t_conv.unit_3d_bn.running_var",
            "module.Conv3d_2b_1x1.s3dConv3d_2b_1x1_conv.weight",
            "module.Mixed_3b.b1b.s3dMixed_3b/Branch_1/Conv3d_0b_3x3x3_s_conv.unit_3d_conv.weight",
            "module.Mixed_5c.b3b.s3dMixed_5c/Branch_3/Conv3d_0b_1x1x1_bn.bias",
            "module.logits.logits_conv.bias"} <= set(saved)
    torch.save(saved, tmp_path / "s3d_ucf101.pth")
    checkpoint = read_checkpoint(str(tmp_path / "s3d_ucf101.pth"))
    assert (checkpoint.layout, checkpoint.arch) == ("vcp-s3d", "s3d_tf")
    assert checkpoint.model_kwargs == dict(widen_factor=0.125, n_classes=5, n_input_channels=3)
    reloaded = load("torch", "models").build_model("s3d_tf", n_classes=5, widen_factor=0.125).eval()
    load("torch", "interop").load_numpy_state(reloaded, checkpoint.state)
    clip = torch.from_numpy(np.random.default_rng(4).uniform(-1, 1, (2, 3, 9, 33, 37)).astype(np.float32))
    with torch.no_grad():
        expected, logits = model(clip), reloaded(clip)
    assert expected.abs().max() > 0.05
    torch.testing.assert_close(logits, expected, rtol=0, atol=0)
    unit = model.Mixed_3b.b1b
    assert unit.spatial.conv3d.kernel_size == (1, 3, 3) and unit.temporal.conv3d.kernel_size == (3, 1, 1)
    assert model.Conv3d_1a_7x7.temporal.conv3d.stride == (2, 1, 1) and model.Conv3d_1a_7x7.spatial.bn.eps == 1e-3
