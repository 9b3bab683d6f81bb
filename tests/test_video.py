import numpy as np
import pytest

from core.video import VideoError, VideoInfo, iter_frames, probe, resize_short_side
from tests._data_videos import (write_corrupted, write_faststart, write_rotated_video, write_tiny_video,
                                 write_truncated, write_variable_rate_video)
from tests.conftest import CRICKET_GIF


def test_probe_and_decode_real_clip():
    assert probe(CRICKET_GIF) == VideoInfo(n_frames=79, fps=25.0, width=224, height=224, duration=3.16)
    frames = list(iter_frames(CRICKET_GIF))
    assert len(frames) == 79
    assert frames[0].shape == (224, 224, 3) and frames[0].dtype == np.uint8
    assert not np.array_equal(frames[0], frames[-1])


@pytest.mark.parametrize("extension", ["avi", "mp4", "mkv", "webm"])
def test_every_container_decodes_all_frames(tmp_path, extension):
    # .mkv and .webm headers carry no frame count: probe must count by decoding.
    path = tmp_path / f"clip.{extension}"
    written = write_tiny_video(path, n_frames=12, height=32, width=48)
    decoded = np.stack(list(iter_frames(path)))
    assert probe(path) == VideoInfo(n_frames=12, fps=25.0, width=48, height=32, duration=0.48)
    assert decoded.shape == (12, 32, 48, 3)
    # Lossy codecs and 4:2:0 chroma change pixels a little, never the order of the frames.
    errors = np.abs(decoded.astype(int) - written).mean(axis=(1, 2, 3))
    assert errors.max() < 8
    shifted = np.abs(decoded[1:].astype(int) - written[:-1]).mean()
    assert shifted > errors.mean() + 1


def test_fps_resampling_repeats_or_drops_frames():
    source = list(iter_frames(CRICKET_GIF))
    slower = list(iter_frames(CRICKET_GIF, fps=10))  # 3.16 s at 10 fps
    assert len(slower) == 32
    assert all(np.array_equal(slower[k], source[int(k * 2.5)]) for k in range(32))
    faster = list(iter_frames(CRICKET_GIF, fps=50))
    assert len(faster) == 158
    assert all(np.array_equal(faster[k], source[k // 2]) for k in range(158))


TRUNCATED = "truncated or corrupt: decoded"


@pytest.mark.parametrize("name, make, reason", [
    ("cut.mp4", lambda p, good: write_truncated(p, good("mp4"), 0.6), "not a readable video"),
    ("cut.avi", lambda p, good: write_truncated(p, good("avi"), 0.6), TRUNCATED),
    # No frame count in these headers: the frames must reach the end of the duration (1.6 s).
    ("cut.mkv", lambda p, good: write_truncated(p, good("mkv"), 0.8), TRUNCATED),
    ("cut.webm", lambda p, good: write_truncated(p, good("webm"), 0.5), TRUNCATED),
    ("cut_faststart.mp4", lambda p, good: write_truncated(p, write_faststart(p.with_name("f.mp4"), good("mp4")), 0.8),
     TRUNCATED),
    ("middle_zeroed.avi", lambda p, good: write_corrupted(p, good("avi")), TRUNCATED),
    ("empty.avi", lambda p, good: p.write_bytes(b""), "empty file"),
    ("notes.mkv", lambda p, good: p.write_text("not a video\n" * 20), "not a readable video"),
    ("missing.mp4", lambda p, good: None, "no such file"),
])
def test_bad_files_raise_video_error_naming_the_file(tmp_path, name, make, reason):
    def good(extension):
        path = tmp_path / f"good.{extension}"
        write_tiny_video(path, n_frames=40)
        return path

    path = tmp_path / name
    make(path, good)
    with pytest.raises(VideoError) as error:
        probe(path)
    assert error.value.path == str(path) and str(path) in str(error.value) and reason in error.value.reason
    if reason == TRUNCATED:
        assert ("s of 1.60 s" if path.suffix in (".mkv", ".webm") else "of about 40 frames") in error.value.reason
    with pytest.raises(VideoError):
        list(iter_frames(path))


def test_resize_short_side():
    frame = np.random.default_rng(0).integers(0, 256, (240, 320, 3), dtype=np.uint8)
    assert resize_short_side(frame, 112).shape == (112, 149, 3)
    assert resize_short_side(frame.transpose(1, 0, 2), 112).shape == (149, 112, 3)
    assert resize_short_side(frame, 480).shape == (480, 640, 3)
    assert resize_short_side(frame, 0) is frame and resize_short_side(frame, 240) is frame
    flat = np.full((64, 96, 3), 77, np.uint8)
    assert np.all(resize_short_side(flat, 32) == 77)


@pytest.mark.parametrize("extension", ["mkv", "webm"])
def test_intact_variable_rate_videos_are_not_taken_for_truncated(tmp_path, extension):
    # 30 frames at 30 fps then 30 at 10 fps: 4 s, which the nominal 30 fps would count as about 118 frames.
    written = write_variable_rate_video(tmp_path / f"vfr.{extension}")
    assert probe(tmp_path / f"vfr.{extension}").n_frames == 60
    assert len(list(iter_frames(tmp_path / f"vfr.{extension}"))) == len(written) == 60
    # The same file cut short is still reported.
    write_truncated(tmp_path / f"cut.{extension}", tmp_path / f"vfr.{extension}", 0.5)
    with pytest.raises(VideoError, match="truncated or corrupt: decoded"):
        probe(tmp_path / f"cut.{extension}")


@pytest.mark.parametrize("degrees, turns", [(90, 1), (-90, 3), (180, 2), (0, 0)])
def test_rotation_metadata_is_applied_as_ffmpeg_does(tmp_path, degrees, turns):
    stored = write_rotated_video(tmp_path / "phone.mp4", degrees)
    frames = list(iter_frames(tmp_path / "phone.mp4"))
    expected = np.rot90(stored, turns)  # counter-clockwise, the display matrix's sense
    assert frames[0].shape == expected.shape and frames[0].flags["C_CONTIGUOUS"]
    assert np.abs(frames[0].astype(int) - expected).mean() < 8  # lossy codec
    info = probe(tmp_path / "phone.mp4")
    assert (info.height, info.width) == expected.shape[:2]
