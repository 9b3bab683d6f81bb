"""Unreadable frames met while loading: training replaces the clip deterministically, evaluation leaves the video
out, every skipped file is named, and a run stops only past `max_bad_clips`."""
import json
import os
import subprocess
import sys

import cv2
import numpy as np
import pytest

from core.config import load_config
from core.datasets import training_set, validation_set
from core.evaluation import evaluate
from core.loader import BatchLoader, TooManyBadClips
from tests._training_data import tiny_config, write_colour_dataset
from tests.conftest import ROOT


def _break(frames, problems):
    """Damage frames 4 and 5 of 8 (every clip of 4 meets one) of the colour dataset: video id -> how (corrupt,
    truncated, missing, small, or the folder emptied)."""
    for video_id, how in problems.items():
        video_dir = next(os.path.join(frames, name, video_id) for name in os.listdir(frames)
                         if os.path.isdir(os.path.join(frames, name, video_id)))
        for frame in (os.path.join(video_dir, f"image_{i:05d}.jpg") for i in (4, 5)):
            if how == "corrupt":
                with open(frame, "r+b") as file:
                    file.write(b"\0" * 64)
            elif how == "truncated":
                data = open(frame, "rb").read()
                open(frame, "wb").write(data[:len(data) // 2])  # libjpeg decodes it, grey below the cut
            elif how == "missing":
                os.remove(frame)
            elif how == "small":
                cv2.imwrite(frame, np.zeros((8, 8, 3), np.uint8))
        if how == "empty":
            for name in os.listdir(video_dir):
                os.remove(os.path.join(video_dir, name))


@pytest.fixture(scope="module")
def damaged(tmp_path_factory):
    """3 x (4 training + 2 validation) videos of 8 frames, 32 x 32; five training videos and one validation video
    broken in each way the loader meets."""
    root = tmp_path_factory.mktemp("damaged")
    frames, annotation = write_colour_dataset(str(root))
    _break(frames, {"v_Red_00": "corrupt", "v_Red_01": "truncated", "v_Green_00": "missing",
                    "v_Green_01": "small", "v_Blue_00": "empty", "v_Blue_05": "corrupt"})
    return root


def _config(root, *overrides):
    return load_config(None, [f"annotation_path={root / 'annotation.json'}", f"video_path={root / 'frames'}",
                              "sample_size=32", "sample_duration=4", "train_crop=center", "n_val_samples=1",
                              "inference_stride=4", "manual_seed=3", "n_classes=3", *overrides])


def _epochs(dataset, epochs, n_workers, max_bad_clips=1.0):
    with BatchLoader(dataset, 4, shuffle=True, seed=3, n_workers=n_workers, max_bad_clips=max_bad_clips) as loader:
        result = []
        for epoch in epochs:
            loader.set_epoch(epoch)
            result.append(([batch for batch in loader], list(loader.skipped)))
    return result


def test_training_replaces_unreadable_clips_deterministically_in_workers_too(damaged, capsys):
    dataset = training_set(_config(damaged))
    assert len(dataset) == 12
    in_process = _epochs(dataset, [0, 1, 2], n_workers=0)
    in_workers = _epochs(dataset, [0, 1, 2], n_workers=2)
    # Resumed at epoch 2, a fresh dataset draws the same replacements: they depend on (seed, epoch, index) only.
    resumed = _epochs(training_set(_config(damaged)), [2], n_workers=0)
    for (batches, skipped), (other_batches, other_skipped) in zip(in_process, in_workers):
        assert skipped == other_skipped
        for (x, y), (other_x, other_y) in zip(batches, other_batches):
            np.testing.assert_array_equal(x, other_x)
            np.testing.assert_array_equal(y, other_y)
    for (x, y), (other_x, other_y) in zip(in_process[2][0], resumed[0][0]):
        np.testing.assert_array_equal(x, other_x)
    batches, skipped = in_process[0]
    # Every batch stays full, and each of the 5 broken training videos was met (clips cover frames 2-5 or so).
    assert [len(y) for _, y in batches] == [4, 4, 4]
    names = {dataset.video_ids[video] for video, _ in skipped}
    assert names == {"v_Red_00", "v_Red_01", "v_Green_00", "v_Green_01", "v_Blue_00"}
    messages = " ".join(problem for _, problem in skipped)
    for video_id, problem in (("v_Red_00", "image_00004.jpg cannot be decoded"),
                              ("v_Red_01", "image_00004.jpg is truncated (no JPEG end-of-image marker)"),
                              ("v_Green_00", "image_00004.jpg is missing"),
                              ("v_Green_01", "image_00004.jpg is 8x8, unlike the other frames of the clip"),
                              ("v_Blue_00", "is missing")):
        assert f"video '{video_id}': frame file " in messages and problem in messages, problem
    report = capsys.readouterr().err
    assert f"epoch 0: skipped {len(skipped)} unreadable clips of 12:" in report
    assert report.count("  skipped: video 'v_Green_00': frame file ") >= 1
    # The replacements are real clips of readable videos: the batch holds no clip of a broken one twice as zeros.
    assert all(np.abs(x).sum(axis=(1, 2, 3, 4)).min() > 0 for x, _ in batches)


def test_past_max_bad_clips_the_epoch_stops_naming_the_first_file(damaged):
    dataset = training_set(_config(damaged))
    with pytest.raises(TooManyBadClips) as error:
        _epochs(dataset, [0], n_workers=2, max_bad_clips=0.25)
    assert str(error.value).startswith("epoch 0: ") and "more than max_bad_clips 0.25 of 12" in str(error.value)
    assert "frame file" in str(error.value) and "\n" not in str(error.value)


def test_evaluation_leaves_the_video_out_and_scores_the_others(damaged):
    config = _config(damaged, "inference_subset=validation", "n_threads=2", "max_bad_clips=0.5",
                     f"result_path={damaged / 'eval'}")

    def predict(x):  # 7 classes: more than the annotation's 3 labels, as piergiaj's 400-class file on 5 labels
        scores = np.zeros((len(x), 7))
        scores[np.arange(len(x)), x.reshape(len(x), 3, -1).mean(axis=2).argmax(axis=1)] = 1
        return scores

    scores, video = evaluate(config, predict, log=lambda line: None)  # writes val.json, scores, confusion
    assert len(validation_set(config)) == 6
    assert "v_Blue_05" not in scores.video_ids and len(scores.video_ids) == 5
    assert scores.probs.shape == (5, 7) and scores.class_names[3:] == ["class_3", "class_4", "class_5", "class_6"]
    np.testing.assert_array_equal(scores.probs.argmax(1), scores.labels)  # the colour cast is the class
    assert (video["top1"], video["mean_class"]) == (1.0, 1.0)
    results = json.loads((damaged / "eval" / "val.json").read_text())["results"]
    assert sorted(results) == sorted(scores.video_ids) and (damaged / "eval" / "confusion_rgb.png").exists()


def test_a_corrupt_frame_in_torch_training_with_workers_is_skipped_and_named(tmp_path):
    root = tmp_path / "data"
    os.makedirs(root)
    write_colour_dataset(str(root))
    _break(str(root / "frames"), {"v_Red_00": "corrupt"})
    config = tiny_config(str(root), tmp_path / "out", n_epochs=1, n_threads=2, max_bad_clips=0.2)
    result = subprocess.run([sys.executable, "-m", "backends.torch.train", "--config", config], cwd=ROOT,
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    assert "epoch 1: skipped 1 unreadable clips of 12:" in result.stderr
    assert "skipped: video 'v_Red_00': frame file " in result.stderr and "cannot be decoded" in result.stderr
    assert os.path.exists(tmp_path / "out" / "save_1.pth")


def _annotation_with(root, video_id, **changes):
    data = json.loads((root / "annotation.json").read_text())
    if "labels" in changes:
        data["labels"] = changes.pop("labels")
    entry = data["database"][video_id]
    entry.update({key: value for key, value in changes.items() if key == "subset"})
    entry["annotations"].update({key: value for key, value in changes.items() if key != "subset"})
    path = root / f"annotation_{len(list(root.glob('annotation_*')))}.json"
    path.write_text(json.dumps(data))
    return path


@pytest.mark.parametrize("changes, message", [
    (dict(segment=["1", "9"]), "video 'v_Red_02' has segment ['1', '9'], expected [first frame, last frame + 1]"),
    (dict(label="Purple"), "video 'v_Red_02' has label 'Purple', which is not in 'labels'"),
    (dict(segment=[1, 30]), "video 'v_Red_02' has segment [1, 30], past its frames in "),
    (dict(labels="RGB"), "'labels' is 'RGB', expected a list of label names"),
    (dict(subset=1), "video 'v_Red_02' has subset 1, expected 'training', 'validation' or 'testing'"),
])
def test_annotation_faults_are_one_line_errors_naming_the_video(damaged, changes, message):
    from core.datasets import AnnotationError
    annotation = _annotation_with(damaged, "v_Red_02", **changes)
    with pytest.raises(AnnotationError) as error:
        training_set(_config(damaged, f"annotation_path={annotation}"))
    assert str(error.value).startswith(f"{annotation}: ") and message in str(error.value), str(error.value)


def test_n_classes_left_at_its_default_is_refused_before_anything_is_built(tmp_path):
    from core.cli import train_main
    root = tmp_path / "data"
    os.makedirs(root)
    write_colour_dataset(str(root), train_per_class=1, val_per_class=1, n_frames=4)
    built = []
    config = tiny_config(str(root), tmp_path / "out")
    text = open(config).read().replace("n_classes: 3\n", "")
    open(config, "w").write(text)
    with pytest.raises(SystemExit) as exit_info:
        train_main("torch", built.append, ["--config", config])
    assert str(exit_info.value.code) == (
        f"config error: {config}: n_classes is not set (default 400), but {root / 'annotation.json'} has 3 labels; "
        "set n_classes: 3 (or n_classes: 400 to keep the larger head)")
    assert built == [] and not (tmp_path / "out").exists()
