"""core.frame_cache: cached frames are the full decode's pixels, follow their JPEGs, and are never served partial."""
import json
import os
import subprocess
import sys

import cv2
import numpy as np
import pytest
from PIL import Image

from core.config import load_config
from core.datasets import training_set, validation_set
from core.frame_cache import FrameCache
from core.frames import FrameError, read_rgb_frames
from core.loader import BatchLoader
from core.spatial import MEAN_STD, pil_resize
from core.video import iter_frames
from tests.conftest import CRICKET_GIF

N_FRAMES = 6
SIZE = 112


@pytest.fixture(scope="module")
def cricket_frames(tmp_path_factory):
    """The real UCF-101 clip as kenshohara's frames: 320 x 240 JPEGs (quality 95, as core.extract_frames)."""
    root = tmp_path_factory.mktemp("cricket")
    video_dir = root / "frames" / "CricketShot" / "v_CricketShot_g04_c01"
    video_dir.mkdir(parents=True)
    for i, frame in enumerate(iter_frames(CRICKET_GIF), 1):
        cv2.imwrite(str(video_dir / f"image_{i:05d}.jpg"), cv2.resize(frame, (320, 240))[..., ::-1],
                    [cv2.IMWRITE_JPEG_QUALITY, 95])
        if i == N_FRAMES:
            break
    database = {"v_CricketShot_g04_c01": {"subset": subset, "annotations": {"label": "CricketShot",
                                                                              "segment": [1, N_FRAMES + 1]}}
                for subset in ("training",)}
    database["v_val"] = {"subset": "validation", "video": "CricketShot/v_CricketShot_g04_c01",
                         "annotations": {"label": "CricketShot", "segment": [1, N_FRAMES + 1]}}
    (root / "annotation.json").write_text(json.dumps({"labels": ["CricketShot"], "database": database}))
    return root, str(video_dir)


def _config(root, *overrides):
    return load_config(None, [f"annotation_path={root / 'annotation.json'}", f"video_path={root / 'frames'}",
                              f"sample_size={SIZE}", "sample_duration=4", "train_crop=corner", "n_val_samples=1",
                              "n_classes=1", *overrides])


def _to_grey_levels(clip):
    """A normalised kinetics C x T x H x W clip back in grey levels (float)."""
    mean, std = (np.asarray(v, np.float32)[:, None, None, None] for v in MEAN_STD["kinetics"])
    return (clip * std + mean) * 255


def _pil_frame(path):
    with Image.open(path) as image:
        return np.asarray(image.convert("RGB"))


def test_cached_frames_are_the_full_decode_and_clips_stay_within_the_reference_bounds(cricket_frames, tmp_path):
    root, video_dir = cricket_frames
    indices = list(range(1, N_FRAMES + 1))
    cache = FrameCache(tmp_path / "cache")
    decoded = read_rgb_frames(video_dir, indices)
    np.testing.assert_array_equal(read_rgb_frames(video_dir, indices, cache=cache), decoded)  # written
    np.testing.assert_array_equal(read_rgb_frames(video_dir, indices, cache=FrameCache(tmp_path / "cache")),
                                  decoded)  # read back by another instance (another process)
    assert len(os.listdir(cache._folder(video_dir))) == N_FRAMES

    # Training with the cache: kenshohara's MultiScaleCornerCrop (crop of the full decode, PIL bilinear) within 2
    # grey levels on average for every scale and corner; measured 0.15-0.69 (max 20) over 60 epochs.
    plain, cached = training_set(_config(root)), training_set(_config(root, f"frame_cache={tmp_path / 'cache'}"))
    assert not cached.spatial.reduced_decoding and cached.frame_cache is not None
    reference_frames = {i: _pil_frame(os.path.join(video_dir, f"image_{i:05d}.jpg")) for i in indices}
    scales = set()
    for epoch in range(8):
        cached.set_epoch(epoch)
        rng = cached.rng(0)
        frame_indices = cached.temporal(cached.frame_indices(0), rng)
        region = cached.spatial.transforms[0].clip_region(240, 320, rng)
        flip = rng.random() < 0.5
        clip = _to_grey_levels(cached[0][0])
        reference = np.stack([pil_resize(reference_frames[i][region.top:region.top + region.height,
                                                              region.left:region.left + region.width], SIZE, SIZE)
                              for i in frame_indices]).transpose(3, 0, 1, 2)
        difference = np.abs(clip - (reference[..., ::-1] if flip else reference))
        assert difference.mean() < 1.0, (region, difference.mean())
        scales.add(region.height)
        # The same clip as decoding every time at full size (the cache changes where pixels come from, not them).
        plain.spatial.reduced_decoding = False
        plain.set_epoch(epoch)
        np.testing.assert_array_equal(cached[0][0], plain[0][0])
    assert len(scales) >= 3, scales
    # Loader worker processes read the same cache (entries written by this process) and load the same clips.
    with BatchLoader(cached, 1, n_workers=2) as loader:
        for epoch in (3, 4):
            loader.set_epoch(epoch)
            plain.set_epoch(epoch)
            [(x, _)] = list(loader)
            np.testing.assert_array_equal(x[0], plain[0][0])

    # Validation with the cache: the reference's pixels (full decode, PIL resize) exactly as without it.
    reference_val = validation_set(_config(root))[0][0]
    np.testing.assert_array_equal(validation_set(_config(root, f"frame_cache={tmp_path / 'cache'}"))[0][0],
                                  reference_val)


def _write_frame(path, value):
    cv2.imwrite(str(path), np.full((24, 32, 3), value, np.uint8), [cv2.IMWRITE_JPEG_QUALITY, 95])


def test_a_changed_frame_is_decoded_again(tmp_path):
    video_dir = tmp_path / "v"
    video_dir.mkdir()
    path = video_dir / "image_00001.jpg"
    _write_frame(path, 40)
    cache = FrameCache(tmp_path / "cache")
    assert read_rgb_frames(str(video_dir), [1], cache=cache).mean() == pytest.approx(40, abs=1)
    # Rewritten in place with its old mtime put back (cp -p, rsync -t): size and ctime still tell.
    stat = os.stat(path)
    _write_frame(path, 200)
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    assert read_rgb_frames(str(video_dir), [1], cache=cache).mean() == pytest.approx(200, abs=1)
    # Replaced by another file (a new inode, as extract_frames' renames do).
    _write_frame(tmp_path / "new.jpg", 90)
    os.replace(tmp_path / "new.jpg", path)
    assert read_rgb_frames(str(video_dir), [1], cache=cache).mean() == pytest.approx(90, abs=1)
    assert read_rgb_frames(str(video_dir), [1], cache=FrameCache(tmp_path / "cache")).mean() == pytest.approx(90, abs=1)
    # Removed: the frame is missing, whatever the cache still holds; replaced by garbage: it cannot be decoded.
    os.remove(path)
    with pytest.raises(FrameError, match="image_00001.jpg is missing"):
        read_rgb_frames(str(video_dir), [1], cache=cache)
    path.write_bytes(b"not a jpeg")
    with pytest.raises(FrameError, match="image_00001.jpg cannot be decoded"):
        read_rgb_frames(str(video_dir), [1], cache=cache)


_CRASH_WHILE_WRITING = """
import os, sys
import numpy as np
from core.frame_cache import FrameCache
from core.frames import read_rgb_frames
original = np.ascontiguousarray
def die_after_the_header(array, *args, **kwargs):  # the pixels are written next: die as a kill -9 would
    os._exit(9)
np.ascontiguousarray = die_after_the_header
read_rgb_frames(sys.argv[1], [1], cache=FrameCache(sys.argv[2]))
"""


def test_a_crash_or_a_damaged_entry_never_serves_partial_pixels(tmp_path, capsys):
    video_dir = tmp_path / "v"
    video_dir.mkdir()
    _write_frame(video_dir / "image_00001.jpg", 70)
    cache_root = tmp_path / "cache"
    # A process killed while writing its entry leaves its temporary only: no entry to read.
    died = subprocess.run([sys.executable, "-c", _CRASH_WHILE_WRITING, str(video_dir), str(cache_root)],
                          cwd=os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    assert died.returncode == 9
    [folder] = [entry.path for entry in os.scandir(cache_root)]
    assert [name.rsplit(".tmp", 1)[0] for name in os.listdir(folder)] == ["image_00001.jpg.rgb.u8"]
    assert all(".tmp" in name for name in os.listdir(folder))
    # The next process removes the dead one's temporary and writes the entry.
    expected = read_rgb_frames(str(video_dir), [1])
    assert read_rgb_frames(str(video_dir), [1], cache=FrameCache(cache_root)).mean() == pytest.approx(70, abs=1)
    assert os.listdir(folder) == ["image_00001.jpg.rgb.u8"]
    entry = os.path.join(folder, "image_00001.jpg.rgb.u8")
    complete = open(entry, "rb").read()
    # Cut short (a lost tail), its end zeroed, or a header that is not the trailer: decoded again, entry rewritten.
    for damaged in (complete[:-100], complete[:-8] + b"\0" * 8, complete[:20] + b"\xff" * 8 + complete[28:]):
        with open(entry, "wb") as f:
            f.write(damaged)
        before = os.stat(entry).st_ino
        np.testing.assert_array_equal(read_rgb_frames(str(video_dir), [1], cache=FrameCache(cache_root)), expected)
        assert open(entry, "rb").read() == complete and os.stat(entry).st_ino != before
    # A cache that cannot be written costs only the caching: frames are decoded, one warning.
    (cache_root / "blocked").write_text("a file where the cache folder would be")
    blocked = FrameCache(cache_root / "blocked")
    for _ in range(2):
        np.testing.assert_array_equal(read_rgb_frames(str(video_dir), [1], cache=blocked), expected)
    assert capsys.readouterr().err.count("cannot write") == 1
