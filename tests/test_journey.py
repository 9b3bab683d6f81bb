"""The README walk-through, run as written, on generated videos: class folders of mixed containers ->
frames -> annotation -> fine-tuning from a kenshohara-layout file -> evaluate -> predict a new .mkv in
each backend, with the names and config travelling in the checkpoint."""
import json
import os
import re
import shlex
import struct
import subprocess
import sys

import numpy as np
import pytest
import yaml

from core.scores import load_scores
from core.training import read_log
from core.synthetic import make_background, render_clip, write_video
from tests._data_videos import write_class_folders
from tests.community import write_kenshohara_pth
from tests.conftest import ROOT

# The real config's model and clips, shrunk: a narrow ResNet-10 on 48 px videos of 16 frames.
TINY = {"model_depth": 10, "resnet_widen_factor": 0.25, "n_pretrain_classes": 7, "sample_size": 32,
        "sample_duration": 8, "inference_stride": 8, "n_epochs": 2, "batch_size": 4, "n_threads": 0,
        "checkpoint": 1, "n_val_samples": 1}


def walk_through_commands():
    """The commands of the README block after '<!-- walk-through -->', continuation lines joined."""
    with open(os.path.join(ROOT, "README.md")) as f:
        readme = f.read()
    block = readme.split("<!-- walk-through -->", 1)[1].split("```bash\n", 1)[1].split("```", 1)[0]
    lines = block.replace("\\\n", " ").splitlines()
    return [shlex.split(line) for line in lines if line.strip() and not line.lstrip().startswith("#")]


def run(argv, cwd, check=True):
    assert argv[0] == "python"
    env = dict(os.environ, PYTHONPATH=ROOT)
    result = subprocess.run([sys.executable, *argv[1:]], cwd=cwd, env=env, capture_output=True, text=True,
                            timeout=300)
    if check:
        assert result.returncode == 0, " ".join(argv) + "\n" + result.stdout[-2000:] + result.stderr[-3000:]
    return result


@pytest.fixture(scope="module")
def journey(tmp_path_factory):
    """The user's folder after every command of the walk-through; {command name: its stdout}."""
    root = tmp_path_factory.mktemp("journey")
    write_class_folders(root / "my_videos", size=48)
    (root / "models").mkdir()
    write_kenshohara_pth(str(root / "models" / "r3d50_K_200ep.pth"), "resnet10", 7, widen_factor=0.25)
    rng = np.random.default_rng(5)
    write_video(str(root / "new_video.mkv"), render_clip("MoveLeft", 48, 24, rng, make_background(rng, 48)))
    with open(os.path.join(ROOT, "configs", "fight_detection.yaml")) as f:
        config = yaml.safe_load(f)
    (root / "configs").mkdir()
    (root / "configs" / "fight_detection.yaml").write_text(yaml.safe_dump({**config, **TINY}))
    outputs = {}
    for argv in walk_through_commands():
        outputs.setdefault(argv[2], run(argv, root).stdout)
    return root, outputs


def read_events(path):
    """{(step, tag): value} of a TensorBoard event file (TFRecord framing: length, CRC, Event, CRC)."""
    from tensorboardX.proto import event_pb2
    data, offset, values = path.read_bytes(), 0, {}
    while offset < len(data):
        length = struct.unpack("<Q", data[offset:offset + 8])[0]
        event = event_pb2.Event.FromString(data[offset + 12:offset + 12 + length])
        values.update({(event.step, value.tag): value.simple_value for value in event.summary.value})
        offset += 12 + length + 4
    return values


def predictions(path):
    with open(path) as f:
        return json.load(f)["results"]


def test_fine_tuning_log_says_what_happened_to_the_weights(journey):
    root, outputs = journey
    log = outputs["backends.torch.train"]
    assert "pretrained weights: models/r3d50_K_200ep.pth (layout kenshohara, resnet10, 7 classes, epoch 1)" in log
    assert "head fc: replaced, 7 -> 2 classes, freshly initialised" in log
    # layer4 + fc of a ResNet-10 at width 0.25 (numbers from the architecture's shapes).
    assert "trainable: layer4, fc: 672,770 of 913,650 parameters" in log
    results = root / "fight" / "results"
    assert {"save_1.pth", "save_2.pth", "save_best.pth", "curves.png"} <= set(os.listdir(results))
    # TensorBoard: kenshohara's tags, one value per epoch, the numbers of train.log / val.log.
    events = read_events(next(results / name for name in os.listdir(results) if name.startswith("events.out")))
    for log_name, prefix in (("train.log", "train"), ("val.log", "val")):
        for row in read_log(results / log_name):
            for column in ("loss", "acc") + (("lr",) if prefix == "train" else ()):
                assert events[(int(row["epoch"]), f"{prefix}/{column}")] == pytest.approx(float(row[column]), abs=1e-6)
    assert len(events) == 2 * 5
    assert "layout 'splits'" in outputs["core.extract_frames"]


def test_new_video_gets_the_same_named_scores_in_the_three_backends(journey):
    root, _ = journey
    torch_result = predictions(root / "fight" / "predictions.json")["new_video.mkv"]
    assert sorted(entry["label"] for entry in torch_result) == ["Fight", "NonFight"]  # names from the checkpoint
    for backend in ("paddle", "mindspore"):
        other = predictions(root / "fight" / f"predictions_{backend}.json")["new_video.mkv"]
        assert [e["label"] for e in other] == [e["label"] for e in torch_result]
        assert np.max(np.abs(np.subtract([e["score"] for e in other], [e["score"] for e in torch_result]))) < 1e-4


def test_timeline_has_every_window_in_seconds_and_a_plot(journey):
    root, _ = journey
    with open(root / "fight" / "timeline" / "new_video.json") as f:
        timeline = json.load(f)
    # 24 frames at 25 fps, windows of 8 every 8 frames.
    assert [(w["start"], w["end"]) for w in timeline["windows"]] == [(0.0, 0.32), (0.32, 0.64), (0.64, 0.96)]
    assert timeline["class_names"] == ["Fight", "NonFight"]
    mean = np.mean([w["scores"] for w in timeline["windows"]], axis=0)
    torch_result = {e["label"]: e["score"] for e in predictions(root / "fight" / "predictions.json")["new_video.mkv"]}
    np.testing.assert_allclose(mean, [torch_result["Fight"], torch_result["NonFight"]], atol=1e-5)
    assert (root / "fight" / "timeline" / "new_video.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_predict_on_video_files_matches_evaluate_on_their_frames(journey):
    """The only difference is the JPEG round trip of extract_frames (quality 95): README states it."""
    root, _ = journey
    output = root / "fight" / "val_videos.csv"
    run(["python", "-m", "backends.torch.predict", "--resume_path", "fight/results/save_best.pth", "my_videos/val",
         "--output", str(output)], root)
    evaluated = load_scores(str(root / "fight" / "results" / "scores_rgb.npz"))
    rows = [line.split(",") for line in output.read_text().splitlines()[1:]]
    predicted = {os.path.splitext(os.path.basename(row[0]))[0]: {row[1]: float(row[2]), row[3]: float(row[4])}
                 for row in rows}
    assert sorted(predicted) == sorted(evaluated.video_ids)
    difference = max(abs(predicted[video][name] - evaluated.probs[i][c])
                     for i, video in enumerate(evaluated.video_ids) for c, name in enumerate(evaluated.class_names))
    print(f"max |predict - evaluate| over {len(rows)} videos: {difference:.2e}")
    assert 0 < difference < 5e-3


def test_bad_files_are_named_and_skipped_and_community_files_print_indices(journey, tmp_path, capsys):
    from core.predict import predict_main
    root, _ = journey
    folder = tmp_path / "inbox"
    folder.mkdir()
    (folder / "broken.mp4").write_bytes(b"not a video at all")
    os.link(root / "new_video.mkv", folder / "good.mkv")
    with pytest.raises(SystemExit) as exit_status:
        predict_main("torch", "backends.torch.engine", ["--resume_path", str(root / "fight/results/save_best.pth"),
                                                str(folder), str(tmp_path / "missing.avi")])
    assert exit_status.value.code == 1
    out, err = capsys.readouterr()
    assert re.search(r"good\.mkv: (Fight|NonFight) 0\.\d{4}, ", out)
    assert "broken.mp4" in err and "missing.avi (no such file or folder)" in err
    # kenshohara's file has no names and no config: the shapes give the model, indices the classes.
    community = str(root / "models" / "r3d50_K_200ep.pth")
    predict_main("torch", "backends.torch.engine", ["--resume_path", community, str(root / "new_video.mkv"), "--topk", "3"])
    out, err = capsys.readouterr()
    assert "holds no class names: printing class indices 0..6" in err
    # Default clips (16 frames every 16) of 24 frames: two windows.
    assert re.search(r"new_video\.mkv: \d 0\.\d{4}, \d 0\.\d{4}, \d 0\.\d{4}  \(2 windows\)", out)
    (tmp_path / "kinetics7.txt").write_text("".join(f"action {i}\n" for i in range(7)))
    predict_main("torch", "backends.torch.engine", ["--resume_path", community, str(root / "new_video.mkv"),
                                            "--labels", str(tmp_path / "kinetics7.txt")])
    assert re.search(r"new_video\.mkv: action \d 0\.\d{4}", capsys.readouterr().out)


def test_kenshohara_inference_command_line(journey, monkeypatch):
    """His `--no_train --no_val --inference --inference_no_average` run, --root_path joined to the paths."""
    from core.cli import train_main
    root, _ = journey
    monkeypatch.chdir(root)  # the config's own paths are relative to where the user runs
    train_main("torch", "backends.torch.engine", [
        "--config", str(root / "configs" / "fight_detection.yaml"), "--root_path", str(root),
        "--video_path", "fight/frames", "--annotation_path", "fight/annotations.json", "--result_path", "fight/ken",
        "--resume_path", "fight/results/save_best.pth", "--no_train", "--no_val", "--inference",
        "--inference_no_average", "--inference_subset", "train", "--output_topk", "1", "--inference_batch_size", "1"])
    results = predictions(root / "fight" / "ken" / "train.json")
    assert len(results) == 8  # the 8 training videos, 16 frames each: windows [1, 9) and [9, 17)
    for clips in results.values():
        assert [clip["segment"] for clip in clips] == [[1, 9], [9, 17]]
        assert all(len(clip["result"]) == 1 and clip["result"][0]["label"] in ("Fight", "NonFight") for clip in clips)


# Runs a module's main with argv, then prints the training frameworks the process imported.
WITHOUT_FRAMEWORKS = """
import runpy, sys
sys.argv = sys.argv[1:]
try:
    runpy.run_module(sys.argv[0], run_name="__main__", alter_sys=True)
except SystemExit as done:
    assert not done.code, done.code
print("frameworks:", sorted({m.split(".")[0] for m in sys.modules} & {"torch", "paddle", "mindspore"}))
"""


def test_an_exported_onnx_model_predicts_the_same_without_a_training_framework(journey):
    root, _ = journey
    config = ["--config", "configs/fight_detection.yaml"]
    run(["python", "-m", "convert.export", "fight/results/save_best.pth", "fight/model.onnx", *config], root)
    (root / "fight" / "labels.txt").write_text("Fight\nNonFight\n")
    out = run(["python", "-c", WITHOUT_FRAMEWORKS, "backends.torch.predict", "--resume_path", "fight/model.onnx",
               *config, "--labels", "fight/labels.txt", "--output", "fight/predictions_onnx.json",
               "new_video.mkv"], root).stdout
    assert out.strip().endswith("frameworks: []")
    onnx, torch_result = (predictions(root / "fight" / name)["new_video.mkv"]
                          for name in ("predictions_onnx.json", "predictions.json"))
    assert [e["label"] for e in onnx] == [e["label"] for e in torch_result]
    assert np.max(np.abs(np.subtract([e["score"] for e in onnx], [e["score"] for e in torch_result]))) < 1e-4
