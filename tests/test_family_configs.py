"""Every family's config in configs/ trains for one short run in every backend.

The configs are the demo-sized ones a user starts from; here their architecture keys (model, depth, width,
the family's own options) train one epoch on the tiny colour dataset at 32 px, with the config's clip length,
in torch, Paddle and MindSpore. The 3D ResNet, R(2+1)D and I3D configs train in the demo tests.
"""
import glob
import math
import os

import pytest
import yaml

from backends import BACKENDS, native_format
from core import archs
from core.checkpoints import read_checkpoint
from core.cli import train_main
from core.config import load_config
from core.training import read_log
from tests._training_data import tiny_config, write_colour_dataset
from tests.conftest import ROOT

DEMO_MODELS = ("resnet", "r2plus1d", "i3d")
ARCH_KEYS = {"model", "model_depth", "resnet_widen_factor", "sample_duration", "mean_dataset",
             *archs.config_options()}


def family_configs():
    found = {}
    for path in sorted(glob.glob(os.path.join(ROOT, "configs", "*.yaml"))):
        with open(path) as f:
            config = yaml.safe_load(f)
        if config.get("model") not in DEMO_MODELS and config.get("modality", "rgb") == "rgb":
            found[os.path.basename(path)] = {key: value for key, value in config.items() if key in ARCH_KEYS}
    return found


CONFIGS = family_configs()


def test_every_family_beyond_the_demo_has_a_config():
    covered = {archs.get(archs.arch_name({"model_depth": None, **keys})).family for keys in CONFIGS.values()}
    demo = {spec.family for spec in archs.SPECS.values() if spec.model in DEMO_MODELS}
    assert covered == {spec.family for spec in archs.SPECS.values()} - demo, covered


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    root = tmp_path_factory.mktemp("colour")
    write_colour_dataset(str(root), train_per_class=2, val_per_class=1)
    return root


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("name", CONFIGS)
def test_family_config_trains_one_epoch(data, tmp_path, name, backend):
    keys = CONFIGS[name]
    result = tmp_path / "run"
    config = tiny_config(str(data), result, **keys, n_epochs=1, checkpoint=1, batch_size=3)
    train_main(backend, f"backends.{backend}.engine", ["--config", config])
    train = read_log(str(result / "train.log"))
    assert len(train) == 1 and math.isfinite(float(train[0]["loss"])) and float(train[0]["loss"]) > 0
    checkpoint = read_checkpoint(str(result / f"save_1.{native_format(backend)}"))
    trained = load_config(config, (), ())
    assert checkpoint.arch == archs.arch_name(trained)
    assert {name: value.shape for name, value in checkpoint.state.items()} == \
        archs.expected_shapes(checkpoint.arch, **archs.model_kwargs(trained))
