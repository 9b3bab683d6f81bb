"""Frame reading, datasets and BatchLoader on a tiny hand-made frame tree (32 x 40 JPEGs)."""
import json
import os
import shutil
import signal
import subprocess
import sys

import cv2
import numpy as np
import pytest

from core.config import load_config
from core.datasets import EvalDataset, VideoDataset, evaluation_set, training_set, validation_set
from core.evaluation import score_videos
from core.frames import FrameError, flow_frame_name, frame_size, read_flow_frames, read_rgb_frames
from core.loader import BatchLoader, WorkerDied
from core.spatial import Compose
from core.temporal import SlidingWindow, TemporalCenterCrop
from tests.conftest import ROOT

# video id -> (label, subset, number of frames); "v4" has no frame folder.
VIDEOS = {"v1": ("a", "training", 5), "v2": ("b", "training", 3),
          "v3": ("b", "validation", 6), "v4": ("a", "validation", 4)}
LABELS = ["a", "b"]


def frame_value(index, label):
    """BGR of frame `index`: red encodes the frame, green the class."""
    return (50, 100 * LABELS.index(label), 10 * index)


@pytest.fixture(scope="module")
def tree(tmp_path_factory):
    root = tmp_path_factory.mktemp("frames")
    database = {}
    for video_id, (label, subset, n_frames) in VIDEOS.items():
        database[video_id] = {"subset": subset, "annotations": {"label": label, "segment": [1, n_frames + 1]}}
        if video_id == "v4":
            continue
        video_dir = root / "jpg" / label / video_id
        video_dir.mkdir(parents=True)
        for i in range(1, n_frames + 1):
            image = np.full((32, 40, 3), frame_value(i, label), np.uint8)
            cv2.imwrite(str(video_dir / f"image_{i:05d}.jpg"), image, [cv2.IMWRITE_JPEG_QUALITY, 100])
        for i in range(1, n_frames):
            for axis, value in (("x", 20 * i), ("y", 255 - 20 * i)):
                cv2.imwrite(str(video_dir / flow_frame_name("image_{:05d}{}.jpg", i, axis)),
                            np.full((32, 40), value, np.uint8), [cv2.IMWRITE_JPEG_QUALITY, 100])
    annotation = root / "annotation.json"
    annotation.write_text(json.dumps({"labels": LABELS, "database": database}))
    return str(annotation), str(root / "jpg")


def make_config(tree, *overrides):
    annotation, video_path = tree
    return load_config(None, [f"annotation_path={annotation}", f"video_path={video_path}", "sample_size=16",
                              "sample_duration=4", "n_val_samples=2", "inference_stride=2", *overrides])


def test_flow_frame_name_supports_both_field_orders():
    assert flow_frame_name("image_{:05d}{}.jpg", 1, "x") == "image_00001x.jpg"
    assert flow_frame_name("flow_{}_{:05d}.jpg", 12, "y") == "flow_y_00012.jpg"
    with pytest.raises(ValueError, match="flow template"):
        flow_frame_name("flow_{:05d}.jpg", 1, "x")


def test_read_frames_values_and_reduced_decoding(tree):
    video_dir = os.path.join(tree[1], "a", "v1")
    rgb = read_rgb_frames(video_dir, [2, 5, 2])
    assert rgb.shape == (3, 32, 40, 3) and rgb.dtype == np.uint8
    np.testing.assert_allclose(rgb[:, 0, 0], [[20, 0, 50], [50, 0, 50], [20, 0, 50]], atol=2)
    assert frame_size(video_dir, "image_00001.jpg") == (32, 40)
    # JPEG decoding at 1/2 or 1/4; `each` maps every frame as it is decoded.
    assert read_rgb_frames(video_dir, [1], reduction=2).shape == (1, 16, 20, 3)
    assert read_rgb_frames(video_dir, [1], reduction=4).shape == (1, 8, 10, 3)
    corners = read_rgb_frames(video_dir, [5, 2], each=lambda frame: frame[:2, :3])
    assert corners.shape == (2, 2, 3, 3)
    np.testing.assert_allclose(corners[:, 1, 2], [[50, 0, 50], [20, 0, 50]], atol=2)
    flow = read_flow_frames(video_dir, [1, 4])
    assert flow.shape == (2, 32, 40, 2)
    np.testing.assert_allclose(flow[:, 0, 0], [[20, 235], [80, 175]], atol=2)
    assert read_flow_frames(video_dir, [1, 4], reduction=2, each=lambda frame: frame[:3]).shape == (2, 3, 20, 2)


def test_decoding_threads_give_the_serial_result(tree):
    video_dir = os.path.join(tree[1], "a", "v1")
    threads = cv2.getNumThreads()
    try:
        cv2.setNumThreads(1)
        serial = read_rgb_frames(video_dir, [1, 2, 3, 4, 5, 1])
        cv2.setNumThreads(3)
        np.testing.assert_array_equal(read_rgb_frames(video_dir, [1, 2, 3, 4, 5, 1]), serial)
    finally:
        cv2.setNumThreads(threads)


def test_video_dataset_items_labels_and_loop_padding(tree):
    dataset = VideoDataset(*tree, "training", Compose([]), TemporalCenterCrop(4))
    assert dataset.video_ids == ["v1", "v2"] and dataset.labels == [0, 1] and dataset.class_names == LABELS
    x, label = dataset[1]
    assert x.shape == (3, 4, 32, 40) and x.dtype == np.float32 and label == 1
    # v2 has 3 frames: the centre crop of 4 loop-pads to frames 1, 2, 3, 1.
    np.testing.assert_allclose(x[0, :, 0, 0], [10, 20, 30, 10], atol=2)
    np.testing.assert_allclose(x[1, :, 5, 5], [100] * 4, atol=2)


def test_flow_dataset_reads_n_minus_one_pairs(tree):
    dataset = VideoDataset(*tree, "training", Compose([]), TemporalCenterCrop(4), modality="flow")
    assert dataset.n_frames == [4, 2]
    x, _ = dataset[0]
    assert x.shape == (2, 4, 32, 40)
    # v1 has pairs 1..4; the centre crop of 4 takes them all.
    np.testing.assert_allclose(x[0, :, 0, 0], [20, 40, 60, 80], atol=2)


def test_missing_video_folder_is_skipped_and_reported(tree, capsys):
    dataset = VideoDataset(*tree, "validation", Compose([]), TemporalCenterCrop(4))
    assert dataset.video_ids == ["v3"]
    assert "1 of 2 'validation' videos have no frame folder" in capsys.readouterr().err


def test_missing_frame_error_names_video_and_file(tree, tmp_path):
    annotation, video_path = tree
    broken = tmp_path / "jpg"
    shutil.copytree(video_path, broken)
    video_dir = broken / "a" / "v1"
    (video_dir / "image_00002.jpg").unlink()
    (video_dir / "image_00003.jpg").write_bytes(b"not a jpeg")
    dataset = VideoDataset(annotation, str(broken), "training", Compose([]), TemporalCenterCrop(4))
    with pytest.raises(FrameError, match=r"video 'v1'.*image_00002\.jpg is missing"):
        dataset[0]
    with pytest.raises(FrameError, match=r"video 'v1'.*image_00003\.jpg cannot be decoded"):
        read_rgb_frames(str(video_dir), [3])
    # The first frame of a clip is also where the frame size is read from.
    (video_dir / "image_00001.jpg").write_bytes(b"not a jpeg")
    dataset = VideoDataset(annotation, str(broken), "training", Compose([]), TemporalCenterCrop(4))
    with pytest.raises(FrameError, match=r"video 'v1'.*image_00001\.jpg cannot be decoded"):
        dataset[0]


def test_sampling_is_seeded_per_item_and_epoch(tree):
    dataset = training_set(make_config(tree, "sample_duration=2", "value_scale=255", "no_mean_norm=true",
                                       "no_std_norm=true"))
    first = dataset[0][0]
    assert first.shape == (3, 2, 16, 16)
    np.testing.assert_array_equal(first, dataset[0][0])
    first_frames = []
    for epoch in range(20):
        dataset.set_epoch(epoch)
        first_frames.append(int(np.round(dataset[0][0][0, 0, 0, 0] / 10)))
    # v1 has 5 frames: a clip of 2 starts at frame 1, 2 or 3 (never 4: the reference's "- 1").
    assert set(first_frames) == {1, 2, 3}
    dataset.set_epoch(0)
    np.testing.assert_array_equal(dataset[0][0], first)


def test_validation_and_evaluation_sets(tree):
    validation = validation_set(make_config(tree))
    # v3 has 6 frames: even crops of 4 with stride ceil((6 - 1 - 4) / 1) = 1 -> frames 1-4 and 2-5.
    assert [clip for _, clip in validation.clips] == [[1, 2, 3, 4], [2, 3, 4, 5]]
    x, label, video_index = validation[1]
    assert x.shape == (3, 4, 16, 16) and label == 1 and video_index == 0

    evaluation = evaluation_set(make_config(tree), "training")
    # Sliding windows of 4 every 2: v1 (5 frames) -> 1-4, 3-5+3; v2 (3 frames) -> 1-3+1.
    assert [clip for _, clip in evaluation.clips] == [[1, 2, 3, 4], [3, 4, 5, 3], [1, 2, 3, 1]]
    assert evaluation.clips_per_video.tolist() == [2, 1]
    assert isinstance(evaluation, EvalDataset) and len(evaluation) == 3


def test_batch_loader_workers_match_main_process(tree):
    dataset = training_set(make_config(tree, "manual_seed=5"))
    dataset_order = []
    batches = {}
    for n_workers in (0, 2):
        with BatchLoader(dataset, batch_size=2, shuffle=True, seed=3, n_workers=n_workers) as loader:
            assert len(loader) == 1
            batches[n_workers] = []
            for epoch in range(3):
                loader.set_epoch(epoch)
                dataset_order.append(loader.batch_indices())
                batches[n_workers] += list(loader)
    for (x0, y0), (x2, y2) in zip(batches[0], batches[2]):
        assert x0.dtype == np.float32 and x0.shape == (2, 3, 4, 16, 16) and y0.dtype == np.int64
        np.testing.assert_array_equal(x0, x2)
        np.testing.assert_array_equal(y0, y2)
    expected = [np.random.default_rng([3, e]).permutation(2).tolist() for e in range(3)]
    assert dataset_order[:3] == [[order] for order in expected]


def test_batch_loader_eval_batches_and_worker_errors(tree, tmp_path):
    evaluation = evaluation_set(make_config(tree), "training")
    loader = BatchLoader(evaluation, batch_size=2, n_workers=2)
    (x, y, videos), (x_last, y_last, videos_last) = list(loader)
    assert x.shape == (2, 3, 4, 16, 16) and x_last.shape == (1, 3, 4, 16, 16)
    assert y.tolist() == [0, 0] and videos.tolist() == [0, 0] and videos_last.tolist() == [1]
    assert len(BatchLoader(evaluation, 2, drop_last=True)) == 1
    loader.close()

    evaluation.video_dirs[1] = str(tmp_path / "gone")
    with BatchLoader(evaluation, batch_size=2, n_workers=2) as loader, \
            pytest.raises(FrameError, match=r"video 'gone'.*image_00001\.jpg is missing"):
        list(loader)


class Numbered:
    """Item i: a 2 x 3 float32 array of i + 100 x epoch and the label i; loading item `fatal` ends the worker
    by `death`."""

    def __init__(self, n, fatal=None, death=None):
        self.n, self.fatal, self.death = n, fatal, death

    def set_epoch(self, epoch):
        self.epoch = epoch

    def __len__(self):
        return self.n

    def __getitem__(self, index):
        if index == self.fatal:
            self.death()
        return np.full((2, 3), index + 100 * self.epoch, np.float32), index


def test_batch_loader_restarts_cleanly_after_an_abandoned_epoch():
    with BatchLoader(Numbered(12), batch_size=2, n_workers=2, prefetch=2) as loader:
        for x, y in loader:  # the workers already hold the epoch's next batches when it is abandoned
            assert y.tolist() == [0, 1]
            break
        loader.set_epoch(1)
        batches = list(loader)
    assert [y.tolist() for _, y in batches] == [[2 * k, 2 * k + 1] for k in range(6)]
    assert np.concatenate([x[:, 0, 0] for x, _ in batches]).tolist() == [100.0 + i for i in range(12)]


def test_batch_loader_started_early_takes_up_or_drops_its_batches():
    for started, iterated in ((1, 1), (1, 2)):  # (2: a resumed run)
        with BatchLoader(Numbered(12), batch_size=2, n_workers=2, prefetch=2) as loader:
            loader.set_epoch(started)
            loader.start()
            loader.start()  # once only
            loader.set_epoch(iterated)
            firsts = [x[:, 0, 0].tolist() for x, _ in loader]
        assert firsts == [[100 * iterated + i, 100 * iterated + i + 1] for i in range(0, 12, 2)]


@pytest.mark.parametrize("death, how", [(lambda: os.kill(os.getpid(), signal.SIGKILL), "was killed by signal 9"),
                                        (lambda: os._exit(3), "exited with code 3")])
def test_batch_loader_reports_a_dead_worker(death, how):
    with BatchLoader(Numbered(8, fatal=5, death=death), batch_size=2, n_workers=2) as loader, \
            pytest.raises(WorkerDied, match=rf"loader worker 0 \(pid \d+\) {how}; out of memory"):
        list(loader)


def test_clips_come_from_the_annotated_segment(tmp_path):
    # Frames 1..20 exist; the segment [5, 20] means frames 5..19 (range(*segment), as the reference reads them).
    video_dir = tmp_path / "jpg" / "a" / "v1"
    video_dir.mkdir(parents=True)
    for i in range(1, 21):
        cv2.imwrite(str(video_dir / f"image_{i:05d}.jpg"), np.full((8, 8, 3), (0, 0, 10 * i), np.uint8),
                    [cv2.IMWRITE_JPEG_QUALITY, 100])
        for axis, value in (("x", 10 * i), ("y", 250 - 10 * i)):
            cv2.imwrite(str(video_dir / flow_frame_name("image_{:05d}{}.jpg", i, axis)),
                        np.full((8, 8), value, np.uint8), [cv2.IMWRITE_JPEG_QUALITY, 100])
    annotation = tmp_path / "annotation.json"
    annotation.write_text(json.dumps({"labels": ["a"], "database": {
        "v1": {"subset": "training", "annotations": {"label": "a", "segment": [5, 20]}}}}))

    rgb = EvalDataset(str(annotation), str(tmp_path / "jpg"), "training", Compose([]), SlidingWindow(8))
    assert [clip for _, clip in rgb.clips] == [list(range(5, 13)), list(range(13, 20)) + [13]]
    np.testing.assert_allclose(rgb[1][0][0, :, 0, 0], [130, 140, 150, 160, 170, 180, 190, 130], atol=2)
    # Flow pair i is frame i -> i + 1: the segment has pairs 5..18.
    flow = EvalDataset(str(annotation), str(tmp_path / "jpg"), "training", Compose([]), SlidingWindow(8),
                       modality="flow")
    assert [clip for _, clip in flow.clips] == [list(range(5, 13)), list(range(13, 19)) + [13, 14]]
    np.testing.assert_allclose(flow[0][0][:, :, 0, 0], [[10 * i for i in range(5, 13)],
                                                        [250 - 10 * i for i in range(5, 13)]], atol=2)
    training = VideoDataset(str(annotation), str(tmp_path / "jpg"), "training", Compose([]), TemporalCenterCrop(4))
    # Centre of frames 5..19: begin 15 // 2 - 2 = 5 entries in, frame 10.
    np.testing.assert_allclose(training[0][0][0, :, 0, 0], [100, 110, 120, 130], atol=2)


def test_video_score_is_the_mean_of_its_clips_softmax(tree):
    config = make_config(tree, "value_scale=255", "no_mean_norm=true", "no_std_norm=true", "n_threads=0",
                         "inference_batch_size=2")

    def predict(x):
        # Red is 10 x the frame index: logits (mean frame index of the clip, 0).
        frame_index = np.round(x[:, 0, :, 0, 0] / 10)
        return np.stack([frame_index.mean(axis=1), np.zeros(len(x))], axis=1)

    scores, clip_top1, clip_top5 = score_videos(config, predict, "training")
    # Windows of 4 every 2: v1 (label a) -> frames 1-4 and 3-5+3 (means 2.5, 3.75); v2 (label b) -> 1-3+1 (1.75).
    def share_of_a(logit_a):  # softmax of (logit_a, 0), first entry
        return 1 / (1 + np.exp(-logit_a))

    v1, v2 = (share_of_a(2.5) + share_of_a(3.75)) / 2, share_of_a(1.75)
    np.testing.assert_allclose(scores.probs, [[v1, 1 - v1], [v2, 1 - v2]], rtol=1e-6)
    np.testing.assert_allclose(scores.logits, [[3.125, 0], [1.75, 0]], rtol=1e-6)
    assert scores.video_ids == ["v1", "v2"] and scores.labels.tolist() == [0, 1]
    # Every clip predicts class a: right for v1's two clips, wrong for v2's one.
    assert clip_top1 == pytest.approx(2 / 3) and clip_top5 == 1.0


def test_core_data_modules_import_no_framework():
    modules = ["core.datasets", "core.metrics", "core.evaluation", "core.eval_accuracy", "core.spatial",
               "core.temporal", "core.frames"]
    code = (f"import sys; import {', '.join(modules)}; "
            "print(sorted({m.split('.')[0] for m in sys.modules} & {'torch', 'paddle', 'mindspore'}))")
    result = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "[]"
