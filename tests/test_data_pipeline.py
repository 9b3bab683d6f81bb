"""Data pipeline details that follow the references: the MindSpore zoo's flow layout, normalisation per
model family, Kinetics' denominators, ReduceLROnPlateau's eps."""
import json

import av
import cv2
import numpy as np
import pytest
import torch

from core.annotations import activitynet, add_segments, kinetics, mit
from core.config import ConfigError, load_config
from core.datasets import AnnotationError, evaluation_set, training_set, validation_set
from core.eval_accuracy import evaluate as eval_accuracy
from core.evaluation import evaluate
from core.extract_frames import extract_video
from core.flow import compute_video
from core.frames import MS_ZOO_FLOW, read_flow_frames
from core.spatial import mean_std
from core.training import LRSchedule
from core.video import iter_frames
from core.video_clips import VideoIndex
from tests._data_videos import tiny_clip, write_tiny_video


def config(*overrides):
    return load_config(None, list(overrides), require_paths=())


# --- normalisation per model family -----------------------------------------------------------------------

def test_mean_dataset_defaults_to_the_model_family_s(capsys):
    assert config("model=i3d").mean_dataset == "i3d"
    assert mean_std(config("model=i3d")) == ([0.5] * 3, [0.5] * 3)  # piergiaj's inputs: x / 255 * 2 - 1
    assert config("model=resnet").mean_dataset == "kinetics"
    assert config("model=r2plus1d").mean_dataset == "kinetics"
    assert config("model=i3d", "mean_dataset=0.5").mean_dataset == "0.5"  # the same statistics: no warning
    assert capsys.readouterr().err == ""


def test_overriding_the_family_s_normalisation_warns(capsys):
    assert config("model=i3d", "mean_dataset=kinetics").mean_dataset == "kinetics"
    assert "mean_dataset 'kinetics' replaces the i3d family's 'i3d'" in capsys.readouterr().err
    config("model=resnet", "mean_dataset=activitynet")
    assert "the resnet family's 'kinetics'" in capsys.readouterr().err
    config("model=resnet", "modality=flow", "mean_dataset=0.5")  # flow is always [-1, 1]: nothing to say
    assert capsys.readouterr().err == ""


# --- the MindSpore zoo's flow files --------------------------------------------------------------------------

N_FRAMES = 6


@pytest.fixture(scope="module")
def flow_tree(tmp_path_factory):
    """The same RGB frames through core.flow's layout and the zoo's, plus an annotation."""
    root = tmp_path_factory.mktemp("flow")
    rgb = root / "rgb" / "a" / "v1"
    rgb.mkdir(parents=True)
    for i, frame in enumerate(tiny_clip(N_FRAMES, 32, 32), 1):
        cv2.imwrite(str(rgb / f"image_{i:05d}.jpg"), frame[..., ::-1], [cv2.IMWRITE_JPEG_QUALITY, 95])
    for layout, template in (("ours", "image_{:05d}{}.jpg"), ("zoo", MS_ZOO_FLOW)):
        assert compute_video(str(rgb), str(root / layout / "a" / "v1"), template=template) == N_FRAMES - 1
    annotation = root / "annotation.json"
    annotation.write_text(json.dumps({"labels": ["a"], "database": {
        "v1": {"subset": "training", "annotations": {"label": "a", "segment": [1, N_FRAMES + 1]}}}}))
    return root, str(annotation)


def test_zoo_flow_layout_is_one_file_later_with_a_zero_first_file(flow_tree):
    root, _ = flow_tree
    zoo, ours = root / "zoo" / "a" / "v1", root / "ours" / "a" / "v1"
    # convert_rgb_to_flow.py: N files for N frames, file 1 = frame 1 against itself (zero motion = 128).
    assert sorted(p.name for p in zoo.glob("*x.jpg"))[-1] == f"image_{N_FRAMES:05d}x.jpg"
    assert sorted(p.name for p in ours.glob("*x.jpg"))[-1] == f"image_{N_FRAMES - 1:05d}x.jpg"
    assert (cv2.imread(str(zoo / "image_00001x.jpg"), cv2.IMREAD_GRAYSCALE) == 128).all()
    # Our pair k (frame k -> k + 1) is the zoo's file k + 1, byte for byte.
    for k in range(1, N_FRAMES):
        assert (ours / f"image_{k:05d}y.jpg").read_bytes() == (zoo / f"image_{k + 1:05d}y.jpg").read_bytes()
    pairs = list(range(1, N_FRAMES))
    np.testing.assert_array_equal(read_flow_frames(str(zoo), pairs, MS_ZOO_FLOW), read_flow_frames(str(ours), pairs))


def test_zoo_flow_is_read_aligned_or_refused(flow_tree):
    root, annotation = flow_tree

    def flow_config(layout, *overrides):
        return load_config(None, [f"annotation_path={annotation}", f"flow_path={root / layout}", "modality=flow",
                                  "sample_size=16", "sample_duration=4", "train_crop=center", *overrides])

    with pytest.raises(AnnotationError, match="set flow_template: ms-zoo"):
        training_set(flow_config("zoo"))
    zoo = training_set(flow_config("zoo", f"flow_template={MS_ZOO_FLOW}"))
    ours = training_set(flow_config("ours"))
    for epoch in range(3):
        zoo.set_epoch(epoch), ours.set_epoch(epoch)
        np.testing.assert_array_equal(zoo[0][0], ours[0][0])


# --- Kinetics: videos without frames stay in the denominator -----------------------------------------------

def test_kinetics_keeps_videos_without_frames_and_both_accuracies_are_printed(tmp_path, capsys):
    csvs, frames = tmp_path / "csv", tmp_path / "jpg"
    csvs.mkdir()
    (csvs / "kinetics_train.csv").write_text("label,youtube_id,time_start,time_end,split\nrun,aaa,0,10,train\n"
                                             "jump,bbb,0,10,train\n")
    (csvs / "kinetics_val.csv").write_text("label,youtube_id,time_start,time_end,split\nrun,ccc,0,10,val\n"
                                           "jump,ddd,0,10,val\nrun,eee,0,10,val\n")
    ids = {"aaa": "run", "bbb": "jump", "ccc": "run", "ddd": "jump"}  # eee was never downloaded
    for youtube_id, label in ids.items():
        folder = frames / label / f"{youtube_id}_000000_000010"
        folder.mkdir(parents=True)
        for i, frame in enumerate(tiny_clip(4, 32, 32), 1):
            cv2.imwrite(str(folder / f"image_{i:05d}.jpg"), frame)
        (folder / ".done").write_text("4")
    data = kinetics(str(csvs), str(frames))
    assert data["database"]["eee_000000_000010"] == {"subset": "validation", "annotations": {"label": "run"}}
    assert "kept without a segment" in capsys.readouterr().err
    annotation = tmp_path / "kinetics.json"
    annotation.write_text(json.dumps(data))
    run_config = load_config(None, [f"annotation_path={annotation}", f"video_path={frames}", "sample_size=16",
                                    "sample_duration=4", "n_threads=0", "batch_size=2", "n_classes=2",
                                    f"result_path={tmp_path / 'results'}"])
    assert len(validation_set(run_config).video_ids) == 2  # trains and validates on the videos with frames
    assert "1 of 3 'validation' videos have no frames" in capsys.readouterr().err

    def always_run(x):  # right for ccc (run), wrong for ddd (jump)
        return np.tile([[5.0, 0.0]], (len(x), 1))

    evaluate(run_config, always_run)
    printed = capsys.readouterr().out
    assert "2 videos of 'validation'" in printed and "video top-1 0.5000" in printed
    assert "1 of 3 listed videos have no frames; counting them wrong (eval_accuracy without --ignore): " \
           "video top-1 0.3333" in printed
    results = str(tmp_path / "results" / "val.json")
    assert eval_accuracy(str(annotation), results, "validation", 1, ignore=True) == 0.5
    assert "top-1 accuracy without --ignore: 0.3333" in capsys.readouterr().err
    assert eval_accuracy(str(annotation), results, "validation", 1, ignore=False) == pytest.approx(1 / 3)
    assert "top-1 accuracy with --ignore: 0.5" in capsys.readouterr().err


# --- ReduceLROnPlateau's eps -----------------------------------------------------------------------------------

def test_plateau_stops_cutting_below_eps_as_torch_does():
    schedule = LRSchedule({"lr_scheduler": "plateau", "learning_rate": 1e-6, "multistep_milestones": [],
                           "n_epochs": 10, "plateau_patience": 0})
    parameter = torch.nn.Parameter(torch.zeros(1))
    optimizer = torch.optim.SGD([parameter], lr=1e-6)
    reference = torch.optim.lr_scheduler.ReduceLROnPlateau(optimizer, factor=0.1, patience=0)
    rates = []
    for loss in [1.0] + [2.0] * 5:
        schedule.step(loss)
        reference.step(loss)
        assert schedule.lr(1) == optimizer.param_groups[0]["lr"]
        rates.append(schedule.lr(1))
    assert rates[-1] == pytest.approx(1e-8)  # 1e-8 -> 1e-9 would cut less than eps: kept


# --- frame_source: video ---------------------------------------------------------------------------------------

VIDEO_FILES = {"v_mp4": ("a", ".mp4", "training"), "v_mkv": ("b", ".mkv", "training"),
               "v_webm": ("a", ".webm", "validation"), "v_avi": ("b", ".avi", "validation")}


@pytest.fixture(scope="module")
def video_tree(tmp_path_factory):
    """Tiny videos in four containers, their frames extracted as core.extract_frames writes them, one JSON."""
    root = tmp_path_factory.mktemp("videos")
    database = {}
    for index, (video_id, (label, extension, subset)) in enumerate(VIDEO_FILES.items()):
        (root / "videos" / label).mkdir(parents=True, exist_ok=True)
        path = root / "videos" / label / f"{video_id}{extension}"
        write_tiny_video(path, n_frames=40 + index, height=48, width=64, seed=index)
        extract_video(str(path), str(root / "frames" / label / video_id), size=0)
        database[video_id] = {"subset": subset, "annotations": {"label": label}}
    data = {"labels": ["a", "b"], "database": database}
    add_segments(data, str(root / "videos"), video_files=True)
    (root / "annotation.json").write_text(json.dumps(data))
    return root


def write_with_keyframes(path, codec, options, frames):
    with av.open(str(path), "w") as container:
        stream = container.add_stream(codec, rate=25, options=options)
        stream.width, stream.height, stream.pix_fmt = frames.shape[2], frames.shape[1], "yuv420p"
        for frame in frames:
            container.mux(stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")))
        container.mux(stream.encode())
    with av.open(str(path)) as container:
        return sum(packet.is_keyframe for packet in container.demux(container.streams.video[0]))


def test_video_frames_by_seeking_equal_a_full_decode(video_tree, tmp_path):
    paths = [str(video_tree / "videos" / label / f"{video_id}{extension}")
             for video_id, (label, extension, _) in VIDEO_FILES.items()]
    # Keyframes every 8 frames with B-frames (decoding order is not presentation order), and every 6: each clip
    # below seeks to a keyframe in the middle of the file.
    frames = tiny_clip(30, 48, 64)
    assert write_with_keyframes(tmp_path / "gop8.mkv", "libx264", {"qp": "18", "g": "8", "bf": "3"}, frames) == 4
    assert write_with_keyframes(tmp_path / "gop6.avi", "mpeg4", {"g": "6"}, frames) == 5
    paths += [str(tmp_path / "gop8.mkv"), str(tmp_path / "gop6.avi")]
    for path in paths:
        decoded = np.stack(list(iter_frames(path)))
        index = VideoIndex(path)
        assert len(index) == len(decoded)  # the annotation's count: the frames route's
        for frames in ([1, 2, 3], [10, 11, 12, 13], [17, 19, 21], [len(decoded) - 1, len(decoded), 5, 5]):
            np.testing.assert_array_equal(index.read(frames), decoded[np.asarray(frames) - 1])


def test_video_files_give_rgb_clips_only():
    with pytest.raises(ConfigError, match="frame_source 'video' reads RGB clips"):
        config("frame_source=video", "modality=flow")


def test_video_route_equals_the_frames_route_within_the_jpeg_round_trip(video_tree):
    annotation = video_tree / "annotation.json"
    segments = {k: v["annotations"]["segment"] for k, v in json.loads(annotation.read_text())["database"].items()}
    assert segments == {video_id: [1, 41 + i] for i, video_id in enumerate(VIDEO_FILES)}
    std = np.asarray([0.2768, 0.2713, 0.2737])[:, None, None, None] * 255  # kinetics std: back to grey levels
    for make_set in (training_set, validation_set, evaluation_set):
        sets = {source: make_set(load_config(None, [
            f"annotation_path={annotation}", f"video_path={video_tree / ('videos' if source == 'video' else 'frames')}",
            f"frame_source={source}", "sample_size=32", "sample_duration=8", "mean_dataset=kinetics",
            "inference_stride=8"])) for source in ("frames", "video")}
        assert len(sets["frames"]) == len(sets["video"])
        errors = []
        for index in range(len(sets["frames"])):
            frames_item, video_item = sets["frames"][index], sets["video"][index]
            assert frames_item[1:] == video_item[1:]  # label (and video index)
            errors.append(np.abs(frames_item[0] - video_item[0]) * std)
        errors = np.stack(errors)
        # Only the frames' JPEG round trip (quality 95; training also its reduced decoding) differs:
        # measured 0.87-1.06 levels on average, 99% within 4, max 13.
        assert errors.mean() < 1.5 and np.percentile(errors, 99) < 8, (errors.mean(), np.percentile(errors, 99))


# --- ActivityNet and Moments in Time --------------------------------------------------------------------------

def write_frames(folder, n_frames, seed=0):
    folder.mkdir(parents=True)
    for i, frame in enumerate(tiny_clip(n_frames, 32, 32, seed), 1):
        cv2.imwrite(str(folder / f"image_{i:05d}.jpg"), frame)
    (folder / ".done").write_text(str(n_frames))


def test_activitynet_segments_in_seconds_become_frame_ranges(tmp_path, capsys):
    videos, frames = tmp_path / "videos", tmp_path / "jpg"
    videos.mkdir()
    for video_id, n_frames in (("abc", 40), ("def", 30), ("jkl", 20)):
        write_tiny_video(videos / f"v_{video_id}.mp4", n_frames=n_frames, seed=len(video_id))  # 25 fps
        extract_video(str(videos / f"v_{video_id}.mp4"), str(frames / f"v_{video_id}"), size=0)
    taxonomy = [{"nodeId": 0, "nodeName": "Root", "parentId": None},
                {"nodeId": 1, "nodeName": "Sports", "parentId": 0},
                {"nodeId": 2, "nodeName": "Running", "parentId": 1},
                {"nodeId": 3, "nodeName": "Jumping", "parentId": 1}]
    official = {"version": "VERSION 1.3", "taxonomy": taxonomy, "database": {
        "abc": {"subset": "training", "duration": 1.6, "annotations": [
            {"segment": [0.2, 1.0], "label": "Running"},     # frames 6 .. 25
            {"segment": [1.0, 1.2], "label": "Running"}]},   # frames 26 .. 30: under 8, dropped
        "def": {"subset": "validation", "duration": 1.2, "annotations": [
            {"segment": [0.0, 5.0], "label": "Jumping"}]},   # past the end: frames 1 .. 29 (kenshohara's min)
        "ghi": {"subset": "validation", "duration": 3.0, "annotations": [
            {"segment": [0.0, 1.0], "label": "Running"}]},   # never downloaded
        "jkl": {"subset": "testing", "duration": 0.8, "annotations": []}}}
    source = tmp_path / "activity_net.v1-3.min.json"
    source.write_text(json.dumps(official))
    data = activitynet(str(source), str(frames), videos_dir=str(videos))
    assert data["labels"] == ["Running", "Jumping"]  # the taxonomy's leaves in its order
    assert data["database"] == {
        "abc_1": {"subset": "training", "video": "v_abc", "fps": 25.0,
                  "annotations": {"label": "Running", "segment": [6, 26]}},
        "def_1": {"subset": "validation", "video": "v_def", "fps": 25.0,
                  "annotations": {"label": "Jumping", "segment": [1, 30]}},
        # Never downloaded: no file, so no fps and no frames; kept for the denominator.
        "ghi_1": {"subset": "validation", "video": "v_ghi", "annotations": {"label": "Running"}},
        "jkl": {"subset": "testing", "video": "v_jkl", "fps": 25.0, "annotations": {"segment": [1, 21]}},
    }
    err = capsys.readouterr().err
    assert "abc_2" in err and "ghi" in err
    annotation = tmp_path / "activitynet.json"
    annotation.write_text(json.dumps(data))
    run_config = load_config(None, [f"annotation_path={annotation}", f"video_path={frames}", "sample_size=16",
                                    "sample_duration=8", "n_threads=0", "batch_size=4", "n_classes=2",
                                    "inference_stride=8", f"result_path={tmp_path / 'results'}"])
    train = training_set(run_config)
    assert train.video_ids == ["abc_1"] and train.frame_indices(0) == list(range(6, 26))
    np.testing.assert_array_equal(train[0][0].shape, (3, 8, 16, 16))

    def always_jumping(x):
        return np.tile([[0.0, 5.0]], (len(x), 1))

    evaluate(run_config, always_jumping)
    results = json.loads((tmp_path / "results" / "val.json").read_text())["results"]
    assert list(results) == ["def_1"] and results["def_1"][0]["label"] == "Jumping"
    assert eval_accuracy(str(annotation), str(tmp_path / "results" / "val.json"), "validation", 1, False) == 0.5


def test_moments_in_time_lists(tmp_path):
    lists, frames = tmp_path / "Moments_in_Time", tmp_path / "jpg"
    lists.mkdir()
    (lists / "moments_categories.txt").write_text("clapping,0\nrunning,1\nasking,2\n")
    (lists / "trainingSet.csv").write_text("clapping/yt-a_1.mp4,clapping,3,3\nrunning/yt-b_2.mp4,running,3,3\n")
    (lists / "validationSet.csv").write_text("asking/yt-c_3.mp4,asking,3,3\n")
    for relative, n_frames in (("clapping/yt-a_1", 5), ("running/yt-b_2", 6), ("asking/yt-c_3", 7)):
        write_frames(frames / relative, n_frames)
    data = mit(str(lists), str(frames))
    assert data == {"labels": ["clapping", "running", "asking"], "database": {
        "yt-a_1": {"subset": "training", "annotations": {"label": "clapping", "segment": [1, 6]}},
        "yt-b_2": {"subset": "training", "annotations": {"label": "running", "segment": [1, 7]}},
        "yt-c_3": {"subset": "validation", "annotations": {"label": "asking", "segment": [1, 8]}}}}
    annotation = tmp_path / "mit.json"
    annotation.write_text(json.dumps(data))
    run_config = load_config(None, [f"annotation_path={annotation}", f"video_path={frames}", "sample_size=16",
                                    "sample_duration=4", "n_classes=3"])
    assert [training_set(run_config).labels, validation_set(run_config).labels] == [[0, 1], [2]]
