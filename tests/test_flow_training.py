"""Flow modality end to end: flow frames from flow_path through the datasets, a flow I3D trained and
evaluated alone, and the evaluate CLI's messages when flow inputs are missing."""
import json
import os
import subprocess
import sys
import types

import cv2
import numpy as np
import pytest

from backends import BACKENDS, native_format
from core.cli import evaluate_main
from core.config import load_config
from core.datasets import training_set
from core.scores import load_scores
from tests.conftest import ROOT

CONFIG = os.path.join(ROOT, "configs", "synthetic_flow.yaml")
SUFFIX = {name: native_format(name) for name in BACKENDS}


def run(module, *args):
    """`python -m module args` from the repository root; fails the test with its stderr."""
    result = subprocess.run([sys.executable, "-m", module, *map(str, args)], cwd=ROOT, capture_output=True,
                            text=True, timeout=300)
    assert result.returncode == 0, f"python -m {module} failed:\n{result.stderr[-3000:]}"
    return result.stdout


def make_flow_dataset(root):
    """Synthetic videos (2 classes x 8: 8 training, 8 validation; 32 px, 16 frames) -> RGB frames,
    DIS flow frames and the annotation JSON, with the project's own CLIs."""
    run("core.synthetic", root / "synthetic", "--classes", 2, "--videos-per-class", 8, "--size", 32,
        "--frames", 16, "--containers", "avi")
    run("core.extract_frames", root / "synthetic" / "videos", root / "frames", "--size", 0, "--workers", 1)
    run("core.flow", root / "frames", root / "flow", "--method", "dis", "--size", 0, "--workers", 1)
    run("core.annotations", "ucf101", root / "synthetic" / "splits", root / "frames", root / "annotations")
    return root


def config_args(data, result_path, *overrides):
    """configs/synthetic_flow.yaml on `data`, shrunk: I3D of width 1/16 on 8 x 32 x 32 clips, one epoch."""
    values = [f"video_path={data / 'frames'}", f"flow_path={data / 'flow'}",
              f"annotation_path={data / 'annotations' / 'ucf101_01.json'}", f"result_path={result_path}",
              "n_classes=2", "resnet_widen_factor=0.0625", "sample_size=32", "sample_duration=8", "n_epochs=1",
              "batch_size=8", "no_val=true", "n_threads=0", "inference_stride=8", "device=cpu", *overrides]
    return ["--config", CONFIG] + [arg for value in values for arg in ("--set", value)]


def train(framework, data, result_path, modality):
    """Train one tiny I3D with the real CLI; returns its checkpoint."""
    run(f"backends.{framework}.train", *config_args(data, result_path, f"modality={modality}"))
    checkpoint = result_path / f"save_1.{SUFFIX[framework]}"
    assert checkpoint.is_file()
    return checkpoint


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    return make_flow_dataset(tmp_path_factory.mktemp("flow_data"))


def write_flow_tree(root, n_frames=4):
    """One training video whose flow x is 40 on the left half, 200 on the right; y is 60 above, 180 below.

    8 x 8 blocks of one value are exact in JPEG. The RGB folder exists but holds no flow files.
    """
    video_dir = root / "flow" / "a" / "v1"
    video_dir.mkdir(parents=True)
    (root / "frames" / "a" / "v1").mkdir(parents=True)
    x = np.full((16, 16), 40, np.uint8)
    x[:, 8:] = 200
    y = np.full((16, 16), 60, np.uint8)
    y[8:] = 180
    for i in range(1, n_frames):
        cv2.imwrite(str(video_dir / f"image_{i:05d}x.jpg"), x)
        cv2.imwrite(str(video_dir / f"image_{i:05d}y.jpg"), y)
    database = {"v1": {"subset": "training", "annotations": {"label": "a", "segment": [1, n_frames + 1]}}}
    (root / "annotation.json").write_text(json.dumps({"labels": ["a"], "database": database}))
    return x, y


def test_flow_training_set_reads_flow_path_in_minus_one_to_one_and_flip_negates_x(tmp_path):
    x, y = write_flow_tree(tmp_path)
    config = load_config(None, [f"video_path={tmp_path / 'frames'}", f"flow_path={tmp_path / 'flow'}",
                                f"annotation_path={tmp_path / 'annotation.json'}", "modality=flow",
                                "sample_size=16", "sample_duration=2", "train_crop=center"])
    dataset = training_set(config)
    assert dataset.n_frames == [3]  # 4 frames, 3 flow pairs
    unit_x, unit_y = x / 255 * 2 - 1, y / 255 * 2 - 1
    seen = set()
    for epoch in range(12):
        dataset.set_epoch(epoch)
        clip, label = dataset[0]
        assert clip.shape == (2, 2, 16, 16) and clip.dtype == np.float32 and label == 0
        assert -1 <= clip.min() and clip.max() <= 1
        flipped = not np.allclose(clip[0, 0], unit_x, atol=0.02)
        if flipped:
            # Mirrored motion: the x component is mirrored and negated, y only mirrored.
            np.testing.assert_allclose(clip[0], np.broadcast_to(-unit_x[:, ::-1], (2, 16, 16)), atol=0.02)
            np.testing.assert_allclose(clip[1], np.broadcast_to(unit_y[:, ::-1], (2, 16, 16)), atol=0.02)
        else:
            np.testing.assert_allclose(clip[0], np.broadcast_to(unit_x, (2, 16, 16)), atol=0.02)
            np.testing.assert_allclose(clip[1], np.broadcast_to(unit_y, (2, 16, 16)), atol=0.02)
        seen.add(flipped)
    assert seen == {True, False}


def test_flow_i3d_trains_and_evaluates_alone(data, tmp_path):
    checkpoint = train("torch", data, tmp_path / "train", "flow")
    out = tmp_path / "evaluate"
    stdout = run("backends.torch.evaluate", *config_args(data, out), "--mode", "flow", "--resume_path", checkpoint)
    assert "[flow] 8 videos of 'validation'" in stdout
    assert sorted(os.listdir(out)) == ["confusion_flow.png", "scores_flow.npz", "val_flow.json"]
    scores = load_scores(out / "scores_flow.npz")
    assert scores.class_names == ["MoveLeft", "MoveRight"] and scores.labels.tolist() == [0] * 4 + [1] * 4
    np.testing.assert_allclose(scores.probs.sum(axis=1), 1, rtol=1e-5)
    # The flow model has 2 input channels: as an RGB model its checkpoint does not fit, and evaluate says so.
    result = subprocess.run([sys.executable, "-m", "backends.torch.evaluate", *config_args(data, out), "--mode",
                             "rgb", "--resume_path", str(checkpoint)], cwd=ROOT, capture_output=True, text=True)
    assert result.returncode == 1
    assert f"cannot evaluate the rgb model: checkpoint {checkpoint} does not fit the model" in result.stderr
    assert "Conv3d_1a_7x7.conv3d.weight: model (4, 3, 7, 7, 7), checkpoint (4, 2, 7, 7, 7)" in result.stderr


@pytest.mark.parametrize("argv, message", [
    (["--mode", "joint", "--resume_path", "{ckpt}"], "--mode joint needs --flow_resume_path"),
    (["--mode", "joint", "--flow_resume_path", "{ckpt}"], "no checkpoint to evaluate: give --resume_path"),
    (["--mode", "flow", "--resume_path", "{ckpt}", "--set", "flow_path="],
     "--mode flow reads optical-flow frames from flow_path, which is not set"),
    (["--mode", "joint", "--resume_path", "{ckpt}", "--flow_resume_path", "{ckpt}", "--set", "flow_path="],
     "--mode joint reads optical-flow frames from flow_path, which is not set"),
    (["--mode", "flow", "--flow_resume_path", "{ckpt}"], "--flow_resume_path is for --mode joint"),
])
def test_evaluate_errors_name_the_missing_flow_input(data, tmp_path, capsys, monkeypatch, argv, message):
    checkpoint = tmp_path / "save_1.pth"
    checkpoint.write_bytes(b"never read")

    def build_predictor(config):
        raise AssertionError("evaluate must stop before building a model")

    fake_engine(monkeypatch, build_predictor)
    argv = config_args(data, tmp_path / "out") + [arg.format(ckpt=checkpoint) for arg in argv]
    with pytest.raises(SystemExit) as exit_info:
        evaluate_main("torch", "fake_engine", argv)
    assert exit_info.value.code == 2
    assert message in capsys.readouterr().err


def fake_engine(monkeypatch, build_predictor):
    """An engine module named 'fake_engine' whose build_predictor is `build_predictor`."""
    monkeypatch.setitem(sys.modules, "fake_engine", types.SimpleNamespace(build_predictor=build_predictor))


def test_flow_evaluation_of_an_rgb_config_does_not_need_its_video_path(data, tmp_path, monkeypatch):
    """--mode flow reads flow_path only: the file's modality (rgb) and its missing video_path don't matter."""
    checkpoint = tmp_path / "save_1.pth"
    checkpoint.write_bytes(b"read by the predictor, not here")
    built = []

    def build_predictor(config):
        built.append(config["modality"])
        return lambda x: np.tile(np.float32([0, 1]), (len(x), 1))

    fake_engine(monkeypatch, build_predictor)
    argv = config_args(data, tmp_path / "out", "modality=rgb", f"video_path={tmp_path / 'no_frames'}")
    evaluate_main("torch", "fake_engine", argv + ["--mode", "flow", "--resume_path", str(checkpoint)])
    assert built == ["flow"]
    scores = load_scores(tmp_path / "out" / "scores_flow.npz")
    assert len(scores.video_ids) == 8
    np.testing.assert_allclose(scores.probs, np.tile(np.exp([0, 1]) / np.exp([0, 1]).sum(), (8, 1)), rtol=1e-6)
