"""TSN as yjxiong/tsn-pytorch: his segment sampling (dataset.py), his checkpoints (`module.base_model.*`,
`module.new_fc.*` in a `.pth.tar`), his input normalisation, one SGD step alike in every backend, and training
from configs/synthetic_tsn.yaml. (The contract and the forward parity at odd sizes run in tests/test_models.py and
tests/parity/test_forward.py, which take every registered arch.)"""
import json
import os
import subprocess
import sys
from collections import OrderedDict

import numpy as np
import pytest
import torch

from backends import BACKENDS, load, native_format
from convert import read_checkpoint
from convert.compare import random_state
from core import archs
from core.checkpoints import read_state
from core.config import load_config
from core.spatial import build_spatial
from core.temporal import build_temporal, segment_offsets
from core.training import read_log
from tests._training_data import write_colour_dataset
from tests.conftest import ROOT
from tests.parity.test_training import LONG_CLIP_TOLERANCE, SGD_LR, assert_sgd_step_agrees, one_step

CONFIG = os.path.join(ROOT, "configs", "synthetic_tsn.yaml")


@pytest.mark.parametrize("arch, count, names", [
    # torchvision's resnet50() (25,557,032 parameters with its 1000-class fc) and his BNInception() built from
    # bn_inception.yaml (tf_model_zoo 9788c67) with a 1000-class new_fc: the same names and shapes as theirs.
    ("tsn_resnet50", 25_557_032, {"base_model.layer4.0.downsample.0.weight": (2048, 1024, 1, 1),
                                  "base_model.layer1.0.conv2.weight": (64, 64, 3, 3), "new_fc.weight": (1000, 2048)}),
    ("tsn_bninception", 11_295_240, {"base_model.conv1_7x7_s2.bias": (64,),
                                     "base_model.inception_5a_1x1.weight": (352, 1056, 1, 1),
                                     "base_model.inception_4e_double_3x3_2_bn.running_var": (256,),
                                     "new_fc.weight": (1000, 1024)}),
])
def test_trees_are_his(arch, count, names):
    shapes = archs.expected_shapes(arch, n_classes=1000)
    assert sum(np.prod(shape) for name, shape in shapes.items() if not name.endswith(("_mean", "_var"))) == count
    assert {name: shapes[name] for name in names} == names
    assert all(name.startswith(("base_model.", "new_fc.")) for name in shapes)


def his_indices(num_frames, num_segments, mode, randint=None, new_length=1):
    """TSNDataSet._sample_indices / _get_val_indices / _get_test_indices (dataset.py, commit 2f0468e), as he
    wrote them, with `randint` for numpy's."""
    if mode == "train":
        average_duration = (num_frames - new_length + 1) // num_segments
        if average_duration > 0:
            offsets = np.multiply(list(range(num_segments)), average_duration) + randint(average_duration,
                                                                                         size=num_segments)
        elif num_frames > num_segments:
            offsets = np.sort(randint(num_frames - new_length + 1, size=num_segments))
        else:
            offsets = np.zeros((num_segments,))
        return offsets + 1
    if mode == "val":
        if num_frames > num_segments + new_length - 1:
            tick = (num_frames - new_length + 1) / float(num_segments)
            offsets = np.array([int(tick / 2.0 + tick * x) for x in range(num_segments)])
        else:
            offsets = np.zeros((num_segments,))
        return offsets + 1
    tick = (num_frames - new_length + 1) / float(num_segments)
    return np.array([int(tick / 2.0 + tick * x) for x in range(num_segments)]) + 1


@pytest.mark.parametrize("new_length", [1, 5])
@pytest.mark.parametrize("num_segments", [1, 3, 7, 25])
def test_segment_offsets_are_his_indices_short_videos_included(num_segments, new_length):
    for num_frames in range(new_length, 60):
        for mode in ("val", "test"):
            ours = segment_offsets(num_frames, num_segments, mode, new_length=new_length)
            assert [o + 1 for o in ours] == his_indices(num_frames, num_segments, mode, new_length=new_length).tolist()
        for seed in range(3):
            ours = segment_offsets(num_frames, num_segments, "train", np.random.default_rng(seed), new_length)
            his = his_indices(num_frames, num_segments, "train", np.random.default_rng(seed).integers, new_length)
            assert [o + 1 for o in ours] == his.tolist(), (num_frames, seed)
            assert all(0 <= o <= num_frames - new_length for o in ours) or num_frames <= num_segments


def test_tsn_configs_sample_segments_and_the_other_archs_clips():
    frames = list(range(1, 31))  # a 30-frame video, frames 1..30
    config = load_config(CONFIG, ["video_path=null", "annotation_path=null", "num_segments=3", "test_segments=5"],
                         ())
    train = build_temporal(config, train=True)(frames, np.random.default_rng(0))
    assert len(train) == 3 and [(f - 1) // 10 for f in train] == [0, 1, 2]  # one frame in each third
    assert build_temporal(config, train=False)(frames) == [[6, 16, 26]]  # centres: int(5 + 10 i) + 1
    assert build_temporal(config, train=False, inference=True)(frames) == [[4, 10, 16, 22, 28]]
    short = build_temporal(config, train=False)(frames[:3])  # 3 frames, 3 segments: his val takes frame 1 thrice
    assert short == [[1, 1, 1]]
    resnet = load_config(None, ["sample_duration=4", "inference_stride=4", "num_segments=3"], ())
    assert build_temporal(resnet, train=False, inference=True)(frames[:8]) == [[1, 2, 3, 4], [5, 6, 7, 8]]


def test_normalisation_is_his_per_base_model():
    """BN-Inception: 0..255 BGR minus [104, 117, 128] (main.py Stack(roll=True), ToTorchFormatTensor(div=False),
    GroupNormalize); ResNet: (x / 255 - ImageNet mean) / std."""
    frame = np.random.default_rng(0).integers(0, 256, (1, 4, 4, 3), dtype=np.uint8)
    bn = load_config(None, ["model=tsn_bninception", "sample_size=4"], ())
    assert (bn.mean_dataset, bn.bgr) == ("bninception", True)
    out = build_spatial(bn, train=False)(frame)
    expected = frame[..., ::-1].astype(np.float32) - np.array([104, 117, 128], np.float32)
    np.testing.assert_allclose(out, expected, rtol=0, atol=1e-4)
    resnet = load_config(None, ["model=tsn_resnet50", "sample_size=4"], ())
    assert (resnet.mean_dataset, resnet.bgr) == ("imagenet", False)
    expected = (frame / 255.0 - np.array([0.485, 0.456, 0.406])) / np.array([0.229, 0.224, 0.225])
    np.testing.assert_allclose(build_spatial(resnet, train=False)(frame), expected, rtol=0, atol=1e-5)
    assert load_config(None, ["model=tsn_bninception", "bgr=false"], ()).bgr is False  # the user's word wins


def write_his_checkpoint(path, arch, his_arch, seed=0, **kwargs):
    """A tsn-pytorch main.py checkpoint: the DataParallel TSN's state_dict (num_batches_tracked included)."""
    model = load("torch", "models").build_model(arch, **kwargs).eval()
    load("torch", "interop").load_numpy_state(model, random_state(arch, seed=seed, **kwargs))
    state = OrderedDict(("module." + name, value) for name, value in model.state_dict().items())
    torch.save({"epoch": 80, "arch": his_arch, "state_dict": state, "best_prec1": torch.tensor(85.3)}, path)
    return model


@pytest.mark.parametrize("arch, his_arch", [("tsn_bninception", "BNInception"), ("tsn_resnet50", "resnet50")])
def test_his_checkpoint_loads_as_pretrain_path_in_every_backend_with_the_same_logits(tmp_path, arch, his_arch):
    path = str(tmp_path / "ucf101_bninception_rgb_model_best.pth.tar")
    model = write_his_checkpoint(path, arch, his_arch, n_classes=4, widen_factor=0.125)
    checkpoint = read_checkpoint(path)
    assert (checkpoint.layout, checkpoint.arch, checkpoint.epoch) == ("tsn", arch, 80)
    assert checkpoint.model_kwargs == dict(widen_factor=0.125, n_classes=4, n_input_channels=3)
    clip = np.random.default_rng(1).standard_normal((2, 3, 3, 32, 32)).astype(np.float32)
    with torch.no_grad():
        reference = model(torch.from_numpy(clip)).numpy()
    assert np.abs(reference).max() > 0.1
    overrides = archs.get(arch).config_overrides({"widen_factor": 0.125, "n_classes": 4})
    for backend in BACKENDS:
        config = load_config(None, overrides + [f"pretrain_path={path}", "n_pretrain_classes=4", "device=cpu"], ())
        engine = load(backend, "engine").Engine(config)
        logits = engine.interop.forward(engine.model, clip)
        assert np.abs(logits - reference).max() <= 1e-4 * max(1.0, np.abs(reference).max()), backend


def test_convert_writes_his_layout_and_reads_his_flow_files(tmp_path):
    from convert import convert
    source = str(tmp_path / "flow_checkpoint.pth.tar")
    # His Flow nets stack new_length 5 flow frames into a 10-channel conv1 (models.py _construct_flow_model).
    write_his_checkpoint(source, "tsn_bninception", "BNInception", n_classes=3, widen_factor=0.125,
                         n_input_channels=10)
    flow = read_checkpoint(source)
    assert flow.model_kwargs["n_input_channels"] == 10
    ckpt, back = str(tmp_path / "flow.ckpt"), str(tmp_path / "back.pth.tar")
    convert(source, ckpt, log=lambda *_: None)
    convert(ckpt, back, layout_out="tsn", log=lambda *_: None)
    tree = torch.load(back, weights_only=True)
    assert tree["arch"] == "BNInception" and set(tree) == {"epoch", "arch", "state_dict", "best_prec1"}
    assert all(name.startswith(("module.base_model.", "module.new_fc.")) for name in tree["state_dict"])
    again = read_checkpoint(back)
    assert (again.layout, again.arch) == ("tsn", "tsn_bninception")
    for name, value in flow.state.items():
        np.testing.assert_array_equal(again.state[name], value, err_msg=name)


def test_sgd_step_agrees_across_backends(tmp_path):
    """BN-Inception ends on 2 x 2 maps at 64 x 64: BatchNorm normalises 4 x 4 x 4 values per channel there, and
    float32 rounding of the training-mode backward reaches ~6e-5 of the float64 step in Paddle and MindSpore
    (at 128 x 128, 5e-4 in torch's own float32 step): the 8-frame bound of tests/parity/test_training.py."""
    rng = np.random.default_rng(0)
    batch = rng.standard_normal((4, 3, 4, 64, 64)).astype(np.float32), np.array([0, 1, 2, 1])
    steps = one_step(tmp_path, batch, "sgd", ["tsn_bninception"], SGD_LR)
    assert_sgd_step_agrees(steps["tsn_bninception"], batch, "tsn_bninception", LONG_CLIP_TOLERANCE)


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    root = tmp_path_factory.mktemp("colours")
    write_colour_dataset(str(root))
    return root


def run(backend, command, config, values):
    args = [sys.executable, "-m", f"backends.{backend}.{command}", "--config", config,
            *[arg for value in values for arg in ("--set", value)]]
    done = subprocess.run(args, cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    return done.stdout


def test_tsn_trains_from_its_config_and_evaluates_segments(data, tmp_path, backend="torch"):
    """(Every backend trains this config in tests/test_family_configs.py.) configs/synthetic_tsn.yaml, shrunk to the colour task (3 classes, 3 segments of 32 x 32, width 1/8), two
    epochs at his learning rate 0.001. His new_fc starts at N(0, 0.001): logits near 0, a first-epoch loss near
    ln 3. (A random BN-Inception does not learn this task in a few steps of 12 frames, whatever the rate: no
    learning is asserted.) torch then evaluates 5 centred segments per validation video."""
    result = tmp_path / backend
    paths = [f"video_path={data / 'frames'}", f"annotation_path={data / 'annotation.json'}"]
    run(backend, "train", CONFIG, paths + [
        f"result_path={result}", "n_classes=3", "resnet_widen_factor=0.125", "sample_size=32", "n_epochs=2",
        "batch_size=4", "n_threads=0", "checkpoint=2", "device=cpu"])
    losses = [float(row["loss"]) for row in read_log(os.path.join(result, "train.log"))]
    assert len(losses) == 2 and abs(losses[0] - np.log(3)) < 0.03, losses
    assert len(read_log(os.path.join(result, "val.log"))) == 2
    checkpoint = os.path.join(result, f"save_2.{native_format(backend)}")
    state = read_state(checkpoint)
    assert state["new_fc.weight"].shape == (3, 128) and "base_model.inception_5b_pool_proj_bn.running_var" in state
    out = run(backend, "evaluate", CONFIG, paths + [f"result_path={tmp_path / 'eval'}", f"resume_path={checkpoint}",
                                                    "n_classes=3", "resnet_widen_factor=0.125", "sample_size=32",
                                                    "test_segments=5", "n_threads=0", "device=cpu"])
    assert "video top-1" in out
    with open(tmp_path / "eval" / "val.json") as f:
        results = json.load(f)["results"]
    assert len(results) == 6  # one clip of 5 frames per validation video
    for top in results.values():
        assert sorted(t["label"] for t in top) == ["Blue", "Green", "Red"]
        assert sum(t["score"] for t in top) == pytest.approx(1, abs=1e-4)
