"""MMAction2's I3D ResNet-50 (and its non-local variant): its release's names and sizes, its .pth files in every
backend, and training from configs/synthetic_i3d_resnet.yaml.

Checked once against MMAction2's own code (not part of the project): its ResNet3d (mmaction2 4d6c9347,
backbones/resnet3d.py) with mmcv's NonLocal3d (a8073c74b) and I3DHead's pooling and fc_cls, built with the
i3d_r50.py / nl-embedded-gaussian configs (inflate_style '3x3x3' for inflate_mode 1, inflate 0 for 0), has our
names and shapes (with `backbone.` / `cls_head.`) and, loaded with our torch model's weights, gives the same
logits (difference 0.0) in all three modes with and without non-local blocks, at full width on 16 x 112 x 112
and at 1/8 width on 9 x 33 x 37 and 5 x 32 x 32 clips.
"""
import os
from collections import OrderedDict

import numpy as np
import pytest
import torch

from backends import BACKENDS, load, native_format
from convert import convert, infer_arch, read_checkpoint
from core import archs
from core.config import load_config
from tests.community import random_model
from tests.conftest import ROOT

CONFIG = os.path.join(ROOT, "configs", "synthetic_i3d_resnet.yaml")


def parameter_count(**kwargs):
    return sum(int(np.prod(shape)) for name, shape in archs.expected_shapes("i3d_resnet50", **kwargs).items()
               if not name.endswith(("running_mean", "running_var")))


def test_the_tree_is_mmaction2s_release():
    # configs/recognition/i3d/metafile.yml: 28.0M (I3D-R50) and 35.4M (the non-local releases).
    assert parameter_count() == 28_043_472 and parameter_count(non_local=True) == 35_397_840
    shapes = archs.expected_shapes("i3d_resnet50", non_local=True)
    assert shapes["conv1.conv.weight"] == (64, 3, 5, 7, 7) and shapes["layer1.0.downsample.conv.weight"] == (256, 64,
                                                                                                            1, 1, 1)
    # inflate (1,1,1), (1,0,1,0), (1,0,1,0,1,0), (0,1,0) with conv1 3x1x1; non-local in layer2 .1 .3, layer3 .1 .3 .5
    assert [shapes[f"layer4.{i}.conv1.conv.weight"][2] for i in range(3)] == [1, 3, 1]
    assert shapes["layer3.4.conv1.conv.weight"] == (256, 1024, 3, 1, 1) and shapes["layer3.4.conv2.conv.weight"][2] == 1
    assert sorted({name.split(".non_local_block")[0] for name in shapes if "non_local_block" in name}) == [
        "layer2.1", "layer2.3", "layer3.1", "layer3.3", "layer3.5"]
    assert shapes["layer2.1.non_local_block.g.0.conv.bias"] == (256,)
    assert shapes["layer2.1.non_local_block.conv_out.conv.weight"] == (512, 256, 1, 1, 1)
    assert "layer2.1.non_local_block.conv_out.conv.bias" not in shapes and shapes["fc_cls.weight"] == (400, 2048)
    mode1 = archs.expected_shapes("i3d_resnet50", inflate_mode=1)
    assert mode1["layer1.0.conv2.conv.weight"] == (64, 64, 3, 3, 3) and mode1["layer1.0.conv1.conv.weight"][2] == 1
    assert all(shape[2] == 1 for name, shape in archs.expected_shapes("i3d_resnet50", inflate_mode=0).items()
               if name.startswith("layer") and name.endswith("conv.weight"))
    model = random_model("i3d_resnet50", widen_factor=0.125)
    assert (model.conv1.bn.eps, model.conv1.bn.momentum, model.conv1.conv.padding) == (1e-5, 0.1, (2, 3, 3))
    assert model.maxpool.stride == (2, 2, 2) and model.pool2.kernel_size == (2, 1, 1)
    assert archs.get("i3d_resnet50").normalisation == "imagenet"


@pytest.mark.parametrize("kwargs", [{}, dict(non_local=True), dict(inflate_mode=1, widen_factor=0.25, n_classes=51),
                                    dict(inflate_mode=0, non_local=True, widen_factor=0.125, n_input_channels=2)])
def test_infer_arch_reads_inflate_mode_and_non_local_from_the_shapes(kwargs):
    arch, inferred = infer_arch(archs.expected_shapes("i3d_resnet50", **kwargs))
    complete = archs.get("i3d_resnet50").builder_kwargs(kwargs)
    assert arch == "i3d_resnet50" and inferred == {key: complete[key] for key in inferred}
    assert set(inferred) == {"widen_factor", "n_classes", "n_input_channels", "inflate_mode", "non_local"}


def test_a_bad_inflate_mode_is_a_config_error():
    with pytest.raises(ValueError, match="inflate_mode' must be one of 0, 1, 2, got 3"):
        load_config(None, ["model=i3d_resnet", "model_depth=50", "inflate_mode=3"], ())


@pytest.mark.parametrize("backend", BACKENDS)
def test_initial_weights_are_mmaction2s_in_every_backend(backend):
    """He normal (fan out) convs and unit BatchNorms (ResNet3d), non-local projections normal 0.01 with zero biases
    and conv_out's BatchNorm zero (mmcv: each block starts as the identity), fc_cls normal 0.01 (I3DHead)."""
    state = load(backend, "interop").to_numpy_state(load(backend, "models").build_model(
        "i3d_resnet50", n_classes=40, widen_factor=0.25, non_local=True))
    for name, value in state.items():
        if ".non_local_block." in name and ".conv_out." not in name:
            expected = 0.0 if name.endswith("bias") else 0.01
        elif name.endswith("conv.weight"):
            expected = np.sqrt(2 / (value.shape[0] * np.prod(value.shape[2:])))
        elif name == "fc_cls.weight":
            expected = 0.01
        else:
            constant = 0.0 if "conv_out.bn.weight" in name or not name.endswith(("weight", "running_var")) else 1.0
            np.testing.assert_array_equal(value, constant, err_msg=name)
            continue
        if expected == 0.0:
            np.testing.assert_array_equal(value, 0.0, err_msg=name)
        elif value.size >= 500:
            assert abs(value.std() / expected - 1) < 0.15 and abs(value.mean()) < 0.2 * expected, name


def write_mmaction2_pth(path, model):
    """An MMAction2 .pth as its runner saves it: {'meta', 'state_dict', ...}, `backbone.` and `cls_head.` names,
    num_batches_tracked included."""
    state = OrderedDict((("cls_head." if name.startswith("fc_cls.") else "backbone.") + name, value)
                        for name, value in model.state_dict().items())
    torch.save({"meta": {"mmaction_version": "1.0.0", "epoch": 100}, "state_dict": state,
                "message_hub": {"log_scalars": {}}}, path)
    return state


def test_mmaction2_file_loads_in_every_backend_as_pretrain_path_and_through_convert(tmp_path):
    model = random_model("i3d_resnet50", seed=3, n_classes=4, widen_factor=0.125, non_local=True)
    path = str(tmp_path / "i3d_nl_embedded_gaussian.pth")
    saved = write_mmaction2_pth(path, model)
    assert {"backbone.conv1.conv.weight", "backbone.conv1.bn.num_batches_tracked", "cls_head.fc_cls.bias",
            "backbone.layer3.5.non_local_block.phi.0.conv.weight"} <= set(saved)
    checkpoint = read_checkpoint(path)
    assert (checkpoint.layout, checkpoint.arch) == ("mmaction2", "i3d_resnet50")
    assert checkpoint.model_kwargs == dict(widen_factor=0.125, n_classes=4, n_input_channels=3, inflate_mode=2,
                                           non_local=True)
    clip = np.random.default_rng(1).standard_normal((2, 3, 9, 33, 37)).astype(np.float32)
    with torch.no_grad():
        reference = model(torch.from_numpy(clip)).numpy()
    assert np.abs(reference).max() > 0.1
    overrides = archs.get("i3d_resnet50").config_overrides(
        {key: value for key, value in checkpoint.model_kwargs.items() if key != "n_input_channels"})
    for backend in BACKENDS:
        converted = str(tmp_path / f"converted.{native_format(backend)}")
        convert(path, converted, log=lambda line: None)
        for source in (f"pretrain_path={path}", f"resume_path={converted}"):
            config = load_config(None, overrides + [source, "n_pretrain_classes=4", "device=cpu"], ())
            engine = load(backend, "engine").Engine(config, training=source.startswith("pretrain"))
            logits = engine.interop.forward(engine.model, clip)
            assert np.abs(logits - reference).max() <= 1e-4 * np.abs(reference).max(), (backend, source)
    # And back: convert writes MMAction2's names again.
    back = str(tmp_path / "back.pth")
    convert(converted, back, layout_out="mmaction2", log=lambda line: None)
    written = torch.load(back, weights_only=True)["state_dict"]
    assert sorted(written) == sorted(name for name in saved if not name.endswith("num_batches_tracked"))
    for name, value in written.items():
        np.testing.assert_array_equal(value.numpy(), saved[name].numpy(), err_msg=name)


def test_synthetic_config_builds_a_small_model():
    config = load_config(CONFIG, ["video_path=null", "annotation_path=null"], ())
    assert archs.arch_name(config) == "i3d_resnet50" and config["mean_dataset"] == "imagenet"
    kwargs = archs.model_kwargs(config)
    assert kwargs["non_local"] is True and kwargs["inflate_mode"] == 2
    assert parameter_count(**{k: v for k, v in kwargs.items() if k != "n_classes"}) < 3_000_000

