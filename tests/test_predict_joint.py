"""predict --mode joint: an RGB and a flow model on a video file, the flow computed on the fly (TV-L1), their
scores fused; the same in the three backends, and as evaluate --mode joint on the extracted RGB and flow
frames of the same video up to the JPEG round trips (README states the measured differences)."""
import json
import subprocess
import sys

import cv2
import numpy as np
import pytest

from backends import BACKENDS
from core.checkpoints import write_checkpoint
from core.checkpoints.reader import Checkpoint
from core.cli import evaluate_main
from core.config import load_config
from core.extract_frames import extract_dataset
from core.flow import compute_video, dequantize
from core.frames import read_flow_frames
from core.predict import VideoScorer, predict_main
from core.scores import load_scores
from tests._data_videos import write_tiny_video
from tests.community import random_model
from tests.conftest import ROOT

CLASSES = ["MoveLeft", "MoveRight"]
N_FRAMES = 18  # 17 flow pairs; windows of 8 every 4: 4 of frames, 4 of pairs
# The settings both checkpoints store and evaluate is given: a narrow ResNet-10 on 32 px clips. (A random narrow
# I3D's logits hardly depend on its input, 1e-7 of their size: no test of its input.)
SETTINGS = {"model": "resnet", "model_depth": 10, "n_classes": 2, "resnet_widen_factor": 0.25, "sample_size": 32,
            "sample_duration": 8, "inference_stride": 4, "batch_size": 8, "n_threads": 0, "device": "cpu"}


@pytest.fixture(scope="module", autouse=True)
def opencv_without_its_thread_pool():
    """TV-L1 runs here in the test process: with OpenCV's threads started, a later test's forked loader worker
    deadlocks in cv2.setNumThreads (core.loader); one thread starts none."""
    threads = cv2.getNumThreads()
    cv2.setNumThreads(1)
    yield
    cv2.setNumThreads(threads)


def write_model(path, modality, seed):
    model = random_model("resnet10", seed, n_classes=2, widen_factor=0.25,
                         n_input_channels=3 if modality == "rgb" else 2)
    state = {name: value.numpy() for name, value in model.state_dict().items()
             if not name.endswith("num_batches_tracked")}
    # Random features vary by ~5 % between clips: a larger head spreads the logits (std ~1), so that the
    # probabilities depend on the input and the comparisons below measure something.
    state["fc.weight"] *= 30
    write_checkpoint(str(path), Checkpoint(state, "resnet10", {}, epoch=1),
                     stored={"class_names": CLASSES, "config": {**SETTINGS, "modality": modality}})
    return str(path)


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    """One 40 x 48 video of 18 frames as a file, its extracted frames and TV-L1 flow (core.flow's defaults),
    an annotation listing it for validation, and two random ResNet-10 checkpoints that store config and names."""
    root = tmp_path_factory.mktemp("predict_joint")
    video = root / "videos" / "MoveRight" / "clip.avi"
    video.parent.mkdir(parents=True)
    write_tiny_video(video, N_FRAMES, 40, 48)
    summary = extract_dataset(str(root / "videos"), str(root / "frames"), workers=1)
    assert [outcome.n_frames for outcome in summary.ok] == [N_FRAMES]
    assert compute_video(str(root / "frames" / "MoveRight" / "clip"), str(root / "flow" / "MoveRight" / "clip")) == 17
    database = {"clip": {"subset": "validation", "annotations": {"label": "MoveRight", "segment": [1, N_FRAMES + 1]}}}
    (root / "annotation.json").write_text(json.dumps({"labels": CLASSES, "database": database}))
    return {"root": root, "video": str(video), "rgb": write_model(root / "rgb.ckpt", "rgb", 1),
            "flow": write_model(root / "flow.ckpt", "flow", 2)}


@pytest.fixture(scope="module")
def predicted(data):
    """backend -> (predict --mode joint's fused probabilities of the video, what it printed), each backend in its
    own process as a user runs it (Paddle's and MindSpore's threads would deadlock later tests' forked loader
    workers); torch also writes a timeline, paddle is given the folder that holds the video."""
    results = {}
    for backend in BACKENDS:
        extra = ["--timeline", str(data["root"] / "timeline")] if backend == "torch" else []
        given = str(data["root"] / "videos") if backend == "paddle" else data["video"]
        output = data["root"] / f"joint_{backend}.json"
        done = subprocess.run([sys.executable, "-m", f"backends.{backend}.predict", given, "--mode", "joint",
                               "--resume_path", data["rgb"], "--flow_resume_path", data["flow"], "--output",
                               str(output), *extra], cwd=ROOT, capture_output=True, text=True, timeout=300)
        assert done.returncode == 0, done.stderr[-3000:]
        with open(output) as f:
            entries = {entry["label"]: entry["score"] for entry in json.load(f)["results"][data["video"]]}
        results[backend] = np.array([entries[name] for name in CLASSES]), done.stdout
    return results


def test_joint_predict_gives_the_same_fused_scores_in_every_backend(data, predicted):
    torch_probs = predicted["torch"][0]
    assert torch_probs.shape == (2,) and abs(torch_probs.sum() - 1) < 1e-6
    for backend in BACKENDS:
        probs, printed = predicted[backend]
        print(f"{backend}: max |fused probabilities - torch's| {np.abs(probs - torch_probs).max():.1e}")
        assert np.abs(probs - torch_probs).max() < 1e-4, backend
        assert printed.endswith("  (rgb 4 windows, flow 4 windows)\n")
    # The fusion (mean of softmax) of the two models run alone on the same file.
    rgb, flow = (predict_main("torch", "backends.torch.engine", [data["video"], "--resume_path", data[tag]])[data["video"]]
                 for tag in ("rgb", "flow"))
    np.testing.assert_allclose(torch_probs, (rgb + flow) / 2, atol=1e-6)
    assert np.abs(rgb - flow).max() > 1e-3  # two different models: the fusion is not trivially one of them


def test_joint_timeline_has_both_streams_windows(data, predicted):
    with open(data["root"] / "timeline" / "clip.json") as f:
        timeline = json.load(f)
    assert timeline["fusion"] == "softmax" and timeline["n_frames"] == N_FRAMES
    # 25 fps; RGB windows of frames 1-8, 5-12, ... 13-18 (padded); flow windows of pairs 1-8 (frames 1-9), ...
    assert [w["frames"] for w in timeline["windows"]] == [[1, 8], [5, 12], [9, 16], [13, 18]]
    assert [w["pairs"] for w in timeline["flow_windows"]] == [[1, 8], [5, 12], [9, 16], [13, 17]]
    assert [w["frames"] for w in timeline["flow_windows"]] == [[1, 9], [5, 13], [9, 17], [13, 18]]
    assert timeline["flow_windows"][0]["start"] == 0.0 and timeline["flow_windows"][0]["end"] == pytest.approx(0.36)
    assert (data["root"] / "timeline" / "clip.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_flow_computed_in_memory_is_core_flow_without_its_jpeg_round_trips(data):
    """The flow model's input: predict's quantised flow of the decoded frames against core.flow's JPEGs of the
    extracted frames (both before the spatial transform)."""
    config = load_config(None, [f"{key}={value}" for key, value in SETTINGS.items()] + ["modality=flow",
                                                                                      "sample_size=40"],
                         require_paths=())
    streams, _ = VideoScorer([(config, None)]).frames(data["video"])
    in_memory = np.stack(streams[0].items)  # Scale to a short side of 40: the frames' own size, nothing resized
    written = read_flow_frames(str(data["root"] / "flow" / "MoveRight" / "clip"), list(range(1, N_FRAMES)))
    assert in_memory.shape == written.shape == (17, 40, 48, 2)
    difference = np.abs(dequantize(in_memory) - dequantize(written))
    print(f"flow in pixels, predict vs core.flow's JPEGs: mean |diff| {difference.mean():.3f}, "
          f"max {difference.max():.3f}")
    assert 0 < difference.mean() < 0.1


def test_joint_predict_matches_evaluate_on_the_extracted_frames(data, predicted, tmp_path, capsys):
    root = data["root"]
    paths = {"video_path": root / "frames", "flow_path": root / "flow", "annotation_path": root / "annotation.json",
             "result_path": tmp_path}
    evaluate_main("torch", "backends.torch.engine", [
        arg for key, value in {**SETTINGS, **paths}.items() for arg in ("--set", f"{key}={value}")]
        + ["--mode", "joint", "--resume_path", data["rgb"], "--flow_resume_path", data["flow"]])
    joint = load_scores(str(tmp_path / "scores_joint.npz"))
    assert joint.video_ids == ["clip"] and joint.class_names == CLASSES
    difference = np.abs(joint.probs[0] - predicted["torch"][0]).max()
    print(f"max |predict --mode joint - evaluate --mode joint| of the fused probabilities: {difference:.2e}")
    assert 0 < difference < 5e-3
    # Each stream's mean logits, against how much they vary between the video's windows.
    from backends.torch.engine import build_predictor
    models = []
    for modality in ("rgb", "flow"):
        config = load_config(None, [f"{key}={value}" for key, value in SETTINGS.items()]
                             + [f"modality={modality}", f"resume_path={data[modality]}"], require_paths=())
        models.append((config, build_predictor(config)))
    for modality, scored in zip(("rgb", "flow"), VideoScorer(models).score(data["video"])):
        evaluated = load_scores(str(tmp_path / f"scores_{modality}.npz")).logits[0]
        difference = np.abs(scored["logits"].mean(0) - evaluated).max()
        spread = scored["logits"].std(0).max()
        print(f"{modality}: max |predict - evaluate| of the mean logits {difference:.3f}, std over windows {spread:.3f}")
        assert 0 < difference < spread / 5




@pytest.mark.parametrize("argv, message", [
    (["--flow_resume_path", "flow.ckpt"], "--flow_resume_path is for --mode joint"),
    (["--mode", "joint"], "--mode joint needs --flow_resume_path, the checkpoint of the flow model"),
])
def test_joint_options_are_checked_before_any_model_is_read(argv, message, capsys):
    with pytest.raises(SystemExit) as exit_info:
        predict_main("torch", "backends.torch.engine", ["video.mp4", "--resume_path", "rgb.ckpt", *argv])
    assert exit_info.value.code == 2 and message in capsys.readouterr().err
