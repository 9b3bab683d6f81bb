"""kenshohara's other families (ResNeXt, pre-activation ResNet, Wide ResNet, DenseNet): his trees, his files.

Reference numbers were taken from kenshohara/3D-ResNets-PyTorch's CVPR2018 branch (d9847ea) models/resnext.py,
pre_act_resnet.py, wide_resnet.py, densenet.py and his master's wide_resnet.py (the 64 x k stem), built at full
width: every state-dict name and shape equals ours, and with the same weights his models' logits on a 16 x 112 x
112 clip equal our torch models' within 1.8e-7 of the largest logit (a one-off check: his code is not part of the
project; his DenseNet ran with the PyTorch 0.3 behaviours it relies on restored, dotted module names and
BatchNorm2d on 5-D input). The tests here hold his parameter counts, read his checkpoint format in every backend, and train one
family from its config.
"""
import os
import subprocess
import sys

import numpy as np
import pytest
import yaml

from backends import BACKENDS, load
from convert import infer_arch, read_checkpoint
from core import archs
from core.config import load_config
from core.engine import trainable_names
from core.training import read_log
from tests._training_data import CLASSES, tiny_config, write_colour_dataset
from tests.community import narrow, random_model, write_kenshohara_pth
from tests.conftest import ROOT


def parameter_count(arch, **kwargs):
    return sum(int(np.prod(shape)) for name, shape in archs.expected_shapes(arch, **kwargs).items()
               if not name.endswith(("running_mean", "running_var")))


@pytest.mark.parametrize("arch, kwargs, count", [
    ("resnext101", {}, 48_340_816),  # his resnext-101-kinetics.pth
    ("resnext50", dict(n_classes=101, shortcut_type="A"), 23_296_037),
    ("preresnet200", {}, 127_419_088),  # preresnet-200-kinetics.pth
    ("preresnet18", dict(shortcut_type="A"), 33_234_384),
    ("wideresnet50", {}, 158_248_272),  # wideresnet-50-kinetics.pth: conv1 with 64 channels
    ("wideresnet50", dict(wide_stem=True, n_input_channels=2, conv1_t_size=3), 158_244_752),  # his 2020 code
    ("densenet121", {}, 11_696_528),  # densenet-121-kinetics.pth
    ("densenet201", {}, 26_143_120),  # densenet-201-kinetics.pth
])
def test_parameter_counts_are_his(arch, kwargs, count):
    assert parameter_count(arch, **kwargs) == count


def test_trees_use_his_names():
    shapes = archs.expected_shapes("densenet121")
    assert shapes["features.conv0.weight"] == (64, 3, 7, 7, 7)
    assert shapes["features.denseblock1.denselayer1.norm.1.running_var"] == (64,)
    assert shapes["features.denseblock1.denselayer6.conv.2.weight"] == (32, 128, 3, 3, 3)
    assert shapes["features.transition3.conv.weight"] == (512, 1024, 1, 1, 1)
    assert shapes["features.norm5.weight"] == (1024,) and shapes["classifier.weight"] == (400, 1024)
    resnext = archs.expected_shapes("resnext101")
    assert resnext["conv1.weight"] == (64, 3, 7, 7, 7)
    assert resnext["layer1.0.conv2.weight"] == (128, 4, 3, 3, 3)  # 32 groups of cardinality * 128 // 32
    assert resnext["layer4.2.conv3.weight"] == (2048, 1024, 1, 1, 1) and resnext["fc.weight"] == (400, 2048)
    preact = archs.expected_shapes("preresnet50")
    assert preact["layer2.0.bn1.weight"] == (256,) and preact["layer2.0.bn3.weight"] == (128,)  # before each conv
    assert archs.expected_shapes("wideresnet50")["layer1.0.conv1.weight"] == (128, 64, 1, 1, 1)
    assert archs.expected_shapes("wideresnet50", wide_stem=True)["conv1.weight"] == (128, 3, 7, 7, 7)
    with pytest.raises(ValueError, match="resnext50: widen_factor 0.125 leaves layer1 16 planes"):
        archs.expected_shapes("resnext50", widen_factor=0.125)


@pytest.mark.parametrize("arch, kwargs", [
    ("resnext101", dict(widen_factor=0.25, cardinality=4, n_classes=101)),
    ("resnext152", dict(cardinality=16, shortcut_type="A")),
    ("preresnet18", dict(widen_factor=0.25, shortcut_type="A", n_input_channels=2)),
    ("preresnet200", dict(widen_factor=0.0625, conv1_t_size=3)),
    ("wideresnet50", {}),
    ("wideresnet50", dict(wide_stem=True)),
    ("wideresnet50", dict(k=3, wide_stem=True)),
    ("wideresnet50", dict(k=4, widen_factor=0.125)),
    ("wideresnet50", dict(widen_factor=0.25, wide_stem=True)),
    ("densenet169", dict(widen_factor=0.25, conv1_t_size=3, n_classes=51)),
    ("densenet264", {}),
])
def test_infer_arch_tells_the_family_and_its_keywords(arch, kwargs):
    inferred_arch, inferred = infer_arch(archs.expected_shapes(arch, **kwargs))
    complete = archs.get(arch).builder_kwargs(kwargs)
    assert inferred_arch == arch
    assert set(kwargs) <= set(inferred) and inferred == {key: complete[key] for key in inferred}


# One depth per family, narrow; the Wide ResNet with each stem. DenseNet clips have 16 frames (see test_models).
FILES = {"resnext50": ("resnext50", narrow("resnext50")),
         "preresnet18": ("preresnet18", dict(widen_factor=0.125, shortcut_type="A")),
         "wideresnet50 2017": ("wideresnet50", dict(widen_factor=0.125)),
         "wideresnet50 2020": ("wideresnet50", dict(widen_factor=0.125, wide_stem=True)),
         "densenet121": ("densenet121", dict(widen_factor=0.25))}


@pytest.mark.parametrize("case", FILES)
def test_his_pth_loads_as_pretrain_path_in_every_backend_with_the_same_logits(tmp_path, case):
    arch, kwargs = FILES[case]
    path = str(tmp_path / "save_200.pth")
    model = write_kenshohara_pth(path, arch, n_classes=4, data_parallel=True, **kwargs)
    checkpoint = read_checkpoint(path)
    assert (checkpoint.layout, checkpoint.arch) == ("kenshohara", arch)
    complete = archs.get(arch).builder_kwargs(dict(kwargs, n_classes=4))
    assert checkpoint.model_kwargs == {key: complete[key] for key in checkpoint.model_kwargs}
    assert set(kwargs) <= set(checkpoint.model_kwargs)

    import torch
    clip = np.random.default_rng(1).standard_normal((2, 3, 16 if arch.startswith("densenet") else 4, 32, 32))
    clip = clip.astype(np.float32)
    with torch.no_grad():
        reference = model(torch.from_numpy(clip)).numpy()
    assert np.abs(reference).max() > 0.1
    config_kwargs = {key: value for key, value in checkpoint.model_kwargs.items() if key != "n_input_channels"}
    overrides = archs.get(checkpoint.arch).config_overrides(config_kwargs)
    for backend in BACKENDS:
        config = load_config(None, overrides + [f"pretrain_path={path}", "n_pretrain_classes=4", "device=cpu"], ())
        engine = load(backend, "engine").Engine(config)
        logits = engine.interop.forward(engine.model, clip)
        assert np.abs(logits - reference).max() <= 1e-4 * max(1.0, np.abs(reference).max()), backend


CONFIGS = {"resnext": "resnext50", "preresnet": "preresnet18", "wideresnet": "wideresnet50",
           "densenet": "densenet121"}


@pytest.mark.parametrize("family", CONFIGS)
def test_each_family_has_a_config_that_builds_it(family):
    # Its data paths are demo.sh's, made by the demo.
    config = load_config(os.path.join(ROOT, "configs", f"synthetic_{family}.yaml"),
                         ["video_path=null", "annotation_path=null"], ())
    assert archs.arch_name(config) == CONFIGS[family]
    kwargs = archs.model_kwargs(config)
    assert parameter_count(CONFIGS[family], **kwargs) < 3_000_000  # small enough for the CPU demo


def test_preresnet_config_trains_on_the_colour_task(tmp_path):
    """configs/synthetic_preresnet.yaml's model on the tiny colour dataset: 5 epochs in torch learn it."""
    write_colour_dataset(str(tmp_path))
    with open(os.path.join(ROOT, "configs", "synthetic_preresnet.yaml")) as f:
        model = {key: value for key, value in yaml.safe_load(f).items()
                 if key in ("model", "model_depth", "resnet_widen_factor")}
    result = tmp_path / "preresnet"
    config = tiny_config(str(tmp_path), result, **model, learning_rate=0.005, multistep_milestones=[4], n_epochs=5,
                         checkpoint=5)
    done = subprocess.run([sys.executable, "-m", "backends.torch.train", "--config", config], cwd=ROOT,
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "training preresnet18" in done.stdout
    train, val = read_log(str(result / "train.log")), read_log(str(result / "val.log"))
    assert float(train[-1]["loss"]) < 0.5 * float(train[0]["loss"])
    assert float(val[-1]["acc"]) == 1.0 and len(val) == 5 and len(CLASSES) == 3


def test_ft_begin_module_names_a_densenet_block_as_his_get_module_name():
    names = list(archs.expected_shapes("densenet121", widen_factor=0.25))
    trained = trainable_names(names, "denseblock4")
    assert trained[0] == "features.denseblock4.denselayer1.norm.1.weight"
    assert trained[-2:] == ["classifier.weight", "classifier.bias"] and "features.norm5.weight" in trained
    assert not [name for name in trained if "denseblock3" in name or "transition3" in name]
    assert trainable_names(names, "classifier") == ["classifier.weight", "classifier.bias"]
    with pytest.raises(ValueError, match="'features' is not a module"):
        trainable_names(names, "features")


def test_his_cvpr2018_files_are_read(tmp_path):
    """His 2017-2018 releases: PyTorch 0.3's legacy (not zip) serialization, DataParallel names, no
    num_batches_tracked (PyTorch 0.4 added it), {'epoch', 'arch', 'state_dict', 'optimizer'} (CVPR2018 train.py)."""
    import torch

    model = random_model("densenet121", n_classes=101, widen_factor=0.25)
    state = {f"module.{name}": value for name, value in model.state_dict().items()
             if not name.endswith("num_batches_tracked")}
    path = tmp_path / "densenet-121-kinetics-ucf101_split1.pth"
    optimizer = {"state": {}, "param_groups": []}
    torch.save({"epoch": 200, "arch": "densenet-121", "state_dict": state, "optimizer": optimizer}, path,
               _use_new_zipfile_serialization=False)
    checkpoint = read_checkpoint(str(path))
    assert (checkpoint.layout, checkpoint.arch, checkpoint.epoch) == ("kenshohara", "densenet121", 200)
    assert checkpoint.model_kwargs["n_classes"] == 101 and checkpoint.model_kwargs["widen_factor"] == 0.25
    assert sorted(checkpoint.state) == sorted(name[len("module."):] for name in state)
    for name, value in state.items():
        np.testing.assert_array_equal(checkpoint.state[name[len("module."):]], value.numpy())


def test_his_2020_densenet_names_are_read_as_his_released_tree(tmp_path):
    """His 2020 master's DenseNet (models/densenet.py, 540a0ea): `features.conv1`, `features.norm1`, dense layers'
    `norm1`/`conv1`/`norm2`/`conv2`; transitions and norm5 keep their names. Renamed back, every tensor lands in
    the CVPR2018 tree's place (the tree of his released files)."""
    import torch

    model = random_model("densenet121", n_classes=7, widen_factor=0.25)
    released = {name: value.numpy() for name, value in model.state_dict().items()}
    renamed = {}
    for name, value in model.state_dict().items():
        name = name.replace("features.conv0.", "features.conv1.").replace("features.norm0.", "features.norm1.")
        for part in ("norm.1", "conv.1", "norm.2", "conv.2"):
            name = name.replace(f".{part}.", f".{part.replace('.', '')}.")
        renamed[name] = value
    assert "features.denseblock2.denselayer3.norm2.running_var" in renamed
    path = tmp_path / "save_10.pth"
    torch.save({"epoch": 10, "arch": "densenet-121", "state_dict": renamed}, path)
    checkpoint = read_checkpoint(str(path))
    assert (checkpoint.layout, checkpoint.arch) == ("kenshohara", "densenet121")
    assert checkpoint.model_kwargs["n_classes"] == 7 and checkpoint.model_kwargs["widen_factor"] == 0.25
    assert sorted(checkpoint.state) == sorted(name for name in released if not name.endswith("num_batches_tracked"))
    for name, value in checkpoint.state.items():
        np.testing.assert_array_equal(value, released[name])
