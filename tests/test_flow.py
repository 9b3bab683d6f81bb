import os
import shutil

import cv2
import numpy as np
import pytest

from core import flow
from core.frames import read_flow_frames
from tests._data_videos import write_tiny_video
from tests.conftest import CRICKET_GIF


def texture(size, seed=0):
    """Smooth random texture (uint8): trackable by every flow method."""
    noise = np.random.default_rng(seed).integers(0, 256, (size, size)).astype(np.float32)
    smooth = cv2.GaussianBlur(noise, (0, 0), 2)
    return cv2.normalize(smooth, None, 0, 255, cv2.NORM_MINMAX).astype(np.uint8)


def moving_frames(n_frames, size=32, dx=2, dy=1, seed=0):
    """Grayscale frames whose content moves dx px right and dy px down per frame."""
    margin = n_frames * max(dx, dy) + 4
    big = texture(size + 2 * margin, seed)
    return [big[margin - i * dy:margin - i * dy + size, margin - i * dx:margin - i * dx + size]
            for i in range(n_frames)]


def write_frame_video(video_dir, n_frames, size=32, seed=0):
    """A frame folder whose content moves 2 px right and 1 px down per frame."""
    os.makedirs(video_dir)
    for i, gray in enumerate(moving_frames(n_frames, size, seed=seed), 1):
        cv2.imwrite(os.path.join(video_dir, f"image_{i:05d}.jpg"), cv2.cvtColor(gray, cv2.COLOR_GRAY2BGR))


def frame_root(root, videos):
    """videos: {'class/video_id': n_frames} -> a frame root like core.extract_frames writes."""
    for seed, (name, n_frames) in enumerate(sorted(videos.items())):
        write_frame_video(os.path.join(root, name), n_frames, seed=seed)
    return str(root)


def read_tree(root):
    """{relative path: bytes} of every file under root."""
    files = {}
    for directory, _, names in os.walk(root):
        for name in names:
            path = os.path.join(directory, name)
            with open(path, "rb") as f:
                files[os.path.relpath(path, root)] = f.read()
    return files


def test_tvl1_defaults_are_opencvs():
    tvl1 = cv2.optflow.DualTVL1OpticalFlow_create()
    getters = {"tau": "getTau", "lambda_": "getLambda", "theta": "getTheta", "nscales": "getScalesNumber",
               "warps": "getWarpingsNumber", "epsilon": "getEpsilon", "inner_iterations": "getInnerIterations",
               "outer_iterations": "getOuterIterations", "scale_step": "getScaleStep", "gamma": "getGamma",
               "median_filtering": "getMedianFiltering", "use_initial_flow": "getUseInitialFlow"}
    assert set(getters) == set(flow.TVL1_PARAMS)
    for name, getter in getters.items():
        assert flow.TVL1_PARAMS[name][1] == pytest.approx(getattr(tvl1, getter)()), name


@pytest.mark.parametrize("method", flow.METHODS)
def test_known_motion(method):
    prev, nxt = moving_frames(2, size=64)
    estimate = flow.flow_pair(prev, nxt, method)
    assert estimate.shape == (64, 64, 2) and estimate.dtype == np.float32
    mean_x, mean_y = estimate[8:-8, 8:-8].reshape(-1, 2).mean(axis=0)
    assert mean_x == pytest.approx(2.0, abs=0.15)
    assert mean_y == pytest.approx(1.0, abs=0.15)


def test_tvl1_parameters_reach_opencv():
    prev, nxt = moving_frames(2, size=48)
    default = flow.flow_pair(prev, nxt, "tvl1")
    assert not np.array_equal(default, flow.flow_pair(prev, nxt, "tvl1", lambda_=0.01, warps=1))
    with pytest.raises(ValueError, match="unknown TV-L1 parameters"):
        flow.flow_pair(prev, nxt, "tvl1", lamda=0.1)
    with pytest.raises(ValueError, match="takes no parameters"):
        flow.flow_pair(prev, nxt, "dis", tau=0.1)


def test_quantize_round_trip():
    bound = 20.0
    values = np.random.default_rng(0).uniform(-bound, bound, (50, 50, 2)).astype(np.float32)
    image = flow.quantize(values, bound)
    assert image.dtype == np.uint8
    assert np.abs(flow.dequantize(image, bound) - values).max() <= bound / 255 + 1e-5
    edges = flow.quantize(np.array([-100.0, -20.0, 0.0, 20.0, 100.0]), bound)
    assert edges.tolist() == [0, 0, 128, 255, 255]
    assert flow.dequantize(np.array([0, 255], np.uint8), bound).tolist() == [-20.0, 20.0]


def test_real_clip_from_video_file(tmp_path):
    os.makedirs(tmp_path / "videos" / "CricketShot")
    shutil.copy(CRICKET_GIF, tmp_path / "videos" / "CricketShot" / "v_CricketShot_g04_c01.gif")
    summary = flow.compute_dataset(str(tmp_path / "videos"), str(tmp_path / "flow"), method="dis", size=64,
                                   progress=False)
    assert (summary["computed"], summary["pairs"], summary["failed"]) == (1, 78, [])
    out = tmp_path / "flow" / "CricketShot" / "v_CricketShot_g04_c01"
    names = sorted(os.listdir(out))
    assert len(names) == 2 * 78 + 1
    assert names[:3] == [".done", "image_00001x.jpg", "image_00001y.jpg"] and names[-1] == "image_00078y.jpg"
    image = cv2.imread(str(out / "image_00040x.jpg"), cv2.IMREAD_GRAYSCALE)
    assert image.shape == (64, 64)  # 224 x 224 resized to the short side 64


def test_real_clip_tvl1_small(tmp_path):
    os.makedirs(tmp_path / "videos" / "CricketShot")
    shutil.copy(CRICKET_GIF, tmp_path / "videos" / "CricketShot" / "cricket.gif")
    assert flow.main([str(tmp_path / "videos"), str(tmp_path / "flow"), "--method", "tvl1", "--size", "32",
                      "--workers", "2", "--template", "flow_{}_{:05d}.jpg", "--warps", "3"]) == 0
    out = tmp_path / "flow" / "CricketShot" / "cricket"
    assert len(list(out.glob("flow_x_*.jpg"))) == len(list(out.glob("flow_y_*.jpg"))) == 78
    assert (out / "flow_y_00078.jpg").exists() and not (out / "flow_x_00079.jpg").exists()
    # The batsman moves: the flow is not zero everywhere (128 is zero flow).
    motion = [np.abs(cv2.imread(str(out / f"flow_x_{i:05d}.jpg"), 0).astype(int) - 128).max() for i in range(1, 79)]
    assert max(motion) > 10


def test_workers_give_identical_files(tmp_path):
    src = frame_root(tmp_path / "frames", {"a/v1": 4, "a/v2": 3, "b/v3": 5})
    for workers in (1, 2):
        summary = flow.compute_dataset(src, str(tmp_path / f"flow{workers}"), method="tvl1", workers=workers,
                                       size=0, progress=False)
        assert (summary["computed"], summary["pairs"]) == (3, 3 + 2 + 4)
    one, two = read_tree(tmp_path / "flow1"), read_tree(tmp_path / "flow2")
    assert len(one) == 2 * 9 + 3
    assert one == two


def test_resume_skips_done_and_redoes_half_written(tmp_path):
    src = frame_root(tmp_path / "frames", {"a/v1": 3, "a/v2": 3, "b/v3": 3})
    dst = tmp_path / "flow"
    flow.compute_dataset(src, str(dst), method="farneback", size=0, progress=False)
    # v1 looks interrupted (no marker, a stray file); v2 carries a file that a redo would delete.
    os.remove(dst / "a" / "v1" / ".done")
    (dst / "a" / "v1" / "image_00009x.jpg").write_bytes(b"partial")
    (dst / "a" / "v2" / "keep.txt").write_text("untouched")
    summary = flow.compute_dataset(src, str(dst), method="farneback", size=0, progress=False)
    assert (summary["videos"], summary["computed"], summary["skipped"], summary["pairs"]) == (3, 1, 2, 2)
    assert (dst / "a" / "v2" / "keep.txt").exists()
    assert sorted(os.listdir(dst / "a" / "v1")) == [".done", "image_00001x.jpg", "image_00001y.jpg",
                                                    "image_00002x.jpg", "image_00002y.jpg"]


def test_corrupt_video_is_reported_and_skipped(tmp_path, capsys):
    src = frame_root(tmp_path / "videos", {"a/good": 3})
    (tmp_path / "videos" / "a" / "broken.avi").write_bytes(b"this is not a video" * 10)
    (tmp_path / "videos" / "b").mkdir()
    (tmp_path / "videos" / "b" / "empty.mp4").write_bytes(b"")
    status = flow.main([src, str(tmp_path / "flow"), "--method", "farneback", "--size", "0", "--workers", "1"])
    assert status == 1
    out = capsys.readouterr()
    assert "3 videos in shard 0/1: 1 computed (2 pairs), 0 already done, 2 failed" in out.out
    assert "a/broken.avi: VideoError" in out.out and "b/empty.mp4: VideoError" in out.out
    assert "empty file" in out.out
    assert "FAILED a/broken.avi" in out.err
    assert (tmp_path / "flow" / "a" / "good" / ".done").exists()
    assert not (tmp_path / "flow" / "a" / "broken").exists()


def test_shards_are_disjoint_and_complete(tmp_path):
    names = ["a/v1", "a/v2", "b/v3", "b/v4", "c/v5"]
    src = frame_root(tmp_path / "frames", {name: 2 for name in names})
    done = []
    for shard in range(3):
        dst = tmp_path / f"shard{shard}"
        summary = flow.compute_dataset(src, str(dst), method="dis", size=0, shard=shard, num_shards=3,
                                       progress=False)
        written = sorted(os.path.relpath(d, dst) for d, _, files in os.walk(dst) if ".done" in files)
        assert written == names[shard::3] and summary["videos"] == len(written)
        done += written
    assert sorted(done) == names
    with pytest.raises(ValueError, match="shard 3"):
        flow.compute_dataset(src, str(tmp_path / "x"), shard=3, num_shards=3)


@pytest.mark.parametrize("template", ["image_{:05d}{}.jpg", "flow_{}_{:05d}.jpg"])
def test_each_component_goes_to_its_file(tmp_path, template):
    # Content moves 2 px right and 1 px down per frame: x must read back as +2 and y as +1, in every pair.
    write_frame_video(tmp_path / "frames" / "a" / "v", 3, size=64)
    flow.compute_dataset(str(tmp_path / "frames"), str(tmp_path / "flow"), method="dis", template=template,
                         progress=False)
    pairs = flow.dequantize(read_flow_frames(str(tmp_path / "flow" / "a" / "v"), [1, 2], template))
    assert pairs.shape == (2, 64, 64, 2)
    for pair in pairs:
        mean_x, mean_y = pair[8:-8, 8:-8].reshape(-1, 2).mean(axis=0)
        assert mean_x == pytest.approx(2.0, abs=0.2) and mean_y == pytest.approx(1.0, abs=0.2)


def test_default_size_keeps_frame_folders_and_resizes_video_files(tmp_path):
    write_frame_video(tmp_path / "src" / "a" / "folder", 2, size=48)
    write_tiny_video(tmp_path / "src" / "a" / "file.mp4", n_frames=2, height=32, width=48)
    summary = flow.compute_dataset(str(tmp_path / "src"), str(tmp_path / "flow"), method="dis", progress=False)
    assert (summary["computed"], summary["failed"]) == (2, [])
    shape = {video: cv2.imread(str(tmp_path / "flow" / "a" / video / "image_00001x.jpg"), 0).shape
             for video in ("folder", "file")}
    # Frames extracted at 48 px stay 48 px; a video file gets core.extract_frames' default short side.
    assert shape == {"folder": (48, 48), "file": (240, 360)}


@pytest.mark.parametrize("options, message", [
    (["--bound", "-5"], "bound must be positive, got -5.0"),
    (["--workers", "0"], "workers must be at least 1, got 0"),
    (["--num-shards", "0"], "number of shards must be at least 1, got 0"),
    (["--shard", "2", "--num-shards", "2"], "shard 2 is not in 0..1"),
    (["--template", "flow_{:05d}.jpg"], "needs one '{}' for x/y"),
    (["--quality", "0"], "quality must be between 1 and 100, got 0"),
])
def test_bad_options_are_usage_errors(tmp_path, capsys, options, message):
    src = frame_root(tmp_path / "frames", {"a/v": 2})
    with pytest.raises(SystemExit) as exit_status:
        flow.main([src, str(tmp_path / "flow"), "--method", "dis", *options])
    assert exit_status.value.code == 2 and message in capsys.readouterr().err
    assert not (tmp_path / "flow").exists()
    with pytest.raises(ValueError, match="bound must be positive"):
        flow.quantize(np.zeros(3), bound=0)


def test_help_explains_pairs_and_padding(capsys):
    with pytest.raises(SystemExit):
        flow.main(["--help"])
    help_text = " ".join(capsys.readouterr().out.split())
    assert "N frames give N - 1 pairs" in help_text and "loop-pads" in help_text
    assert "default: frame folders keep theirs, video files get 240" in help_text


def _mark_finished(video_dir):
    """The .done marker core.extract_frames writes last: the frame count."""
    count = len([name for name in os.listdir(video_dir) if name.startswith("image_")])
    with open(os.path.join(video_dir, ".done"), "w") as f:
        f.write(str(count))


def test_only_finished_frame_folders_are_read_and_changed_frames_redo_their_flow(tmp_path, capsys):
    src = frame_root(tmp_path / "frames", {"a/v1": 3, "a/v2": 4})
    dst = tmp_path / "flow"
    _mark_finished(os.path.join(src, "a", "v1"))
    os.remove(os.path.join(src, "a", "v2", "image_00004.jpg"))  # v2: extraction still running, no marker yet
    options = dict(method="farneback", size=0, progress=False)
    summary = flow.compute_dataset(src, str(dst), **options)
    assert (summary["computed"], summary["pairs"]) == (1, 2)
    assert summary["failed"][0][0] == "a/v2" and "frames not finished" in summary["failed"][0][1]
    assert not (dst / "a" / "v2").exists()
    # The extraction finishes: v2 is computed whole, v1 is left alone.
    shutil.rmtree(os.path.join(src, "a", "v2"))
    write_frame_video(os.path.join(src, "a", "v2"), 4, seed=1)
    _mark_finished(os.path.join(src, "a", "v2"))
    summary = flow.compute_dataset(src, str(dst), **options)
    assert (summary["computed"], summary["skipped"], summary["pairs"], summary["failed"]) == (1, 1, 3, [])
    # v1 is extracted again, longer: its flow is stale and redone.
    shutil.rmtree(os.path.join(src, "a", "v1"))
    write_frame_video(os.path.join(src, "a", "v1"), 6, seed=0)
    _mark_finished(os.path.join(src, "a", "v1"))
    summary = flow.compute_dataset(src, str(dst), **options)
    assert (summary["computed"], summary["skipped"], summary["pairs"]) == (1, 1, 5)
    assert len(os.listdir(dst / "a" / "v1")) == 2 * 5 + 1
    # --no-markers reads an unfinished folder too.
    os.remove(os.path.join(src, "a", "v2", ".done"))
    summary = flow.compute_dataset(src, str(tmp_path / "flow2"), markers=False, **options)
    assert (summary["computed"], summary["failed"]) == (2, [])
    capsys.readouterr()
    # A tree where no folder has a marker was made by another tool: read, with one line saying so.
    os.remove(os.path.join(src, "a", "v1", ".done"))
    summary = flow.compute_dataset(src, str(tmp_path / "flow3"), **options)
    assert (summary["computed"], summary["failed"]) == (2, [])
    assert "no frame folder has a .done marker: frames made by another tool, read as they are" in \
        capsys.readouterr().err


def test_a_name_with_a_newline_stays_on_its_report_line(tmp_path, capsys):
    (tmp_path / "videos" / "a").mkdir(parents=True)
    (tmp_path / "videos" / "a" / "two\nlines.avi").write_bytes(b"not a video" * 10)
    assert flow.main([str(tmp_path / "videos"), str(tmp_path / "flow"), "--method", "farneback", "--workers", "1"]) == 1
    captured = capsys.readouterr()
    assert [line for line in captured.out.splitlines() if "failed:" in line][0].startswith(
        "  failed: a/two\\nlines.avi: VideoError: ")
    assert "FAILED a/two\\nlines.avi: VideoError: " in captured.err
