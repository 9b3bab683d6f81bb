"""Temporal sampling: indices equal kenshohara's temporal_transforms.py (expected values written out)."""
import numpy as np

from core.config import load_config
from core.temporal import (Compose, LoopPadding, SlidingWindow, TemporalBeginCrop, TemporalCenterCrop,
                           TemporalEvenCrop, TemporalRandomCrop, TemporalSubsampling, build_temporal)


def frames(n):
    return list(range(1, n + 1))


def test_loop_padding_repeats_cyclically_and_keeps_long_videos():
    assert LoopPadding(7)(frames(3)) == [1, 2, 3, 1, 2, 3, 1]
    assert LoopPadding(5)(frames(2)) == [1, 2, 1, 2, 1]
    assert LoopPadding(4)(frames(10)) == frames(10)


def test_begin_crop():
    assert TemporalBeginCrop(4)(frames(10)) == [1, 2, 3, 4]
    assert TemporalBeginCrop(7)(frames(3)) == [1, 2, 3, 1, 2, 3, 1]


def test_center_crop():
    assert TemporalCenterCrop(4)(frames(10)) == [4, 5, 6, 7]
    assert TemporalCenterCrop(4)(frames(11)) == [4, 5, 6, 7]
    assert TemporalCenterCrop(8)(frames(3)) == [1, 2, 3, 1, 2, 3, 1, 2]


def test_even_crop_long_and_short_videos():
    assert TemporalEvenCrop(8, 3)(frames(20)) == [list(range(1, 9)), list(range(7, 15)), list(range(13, 21))]
    assert TemporalEvenCrop(16, 3)(frames(50)) == [list(range(1, 17)), list(range(18, 34)), list(range(35, 51))]
    assert TemporalEvenCrop(16, 2)(frames(17)) == [list(range(1, 17)), list(range(2, 18))]
    # The second clip runs past the end: it is loop-padded and ends the list.
    assert TemporalEvenCrop(16, 3)(frames(16)) == [list(range(1, 17)), list(range(2, 17)) + [2]]
    # Shorter than one clip: a single padded clip.
    assert TemporalEvenCrop(8, 3)(frames(5)) == [[1, 2, 3, 4, 5, 1, 2, 3]]
    assert TemporalEvenCrop(16, 1)(frames(100)) == [list(range(1, 17))]


def test_sliding_window():
    assert SlidingWindow(4, 2)(frames(5)) == [[1, 2, 3, 4], [3, 4, 5, 3]]
    assert SlidingWindow(4, 3)(frames(10)) == [[1, 2, 3, 4], [4, 5, 6, 7], [7, 8, 9, 10], [10, 10, 10, 10]]
    assert SlidingWindow(4)(frames(10)) == [[1, 2, 3, 4], [5, 6, 7, 8], [9, 10, 9, 10]]
    assert SlidingWindow(8, 8)(frames(3)) == [[1, 2, 3, 1, 2, 3, 1, 2]]


def test_random_crop_is_seeded_and_never_starts_at_the_last_position():
    crop = TemporalRandomCrop(4)
    starts = {crop(frames(10), np.random.default_rng(s))[0] for s in range(200)}
    # Begin in [0, n - size - 1] = [0, 5]: first frame 1..6, never 7.
    assert starts == {1, 2, 3, 4, 5, 6}
    assert crop(frames(10), np.random.default_rng(3)) == crop(frames(10), np.random.default_rng(3))
    assert crop(frames(3), np.random.default_rng(0)) == [1, 2, 3, 1]


def test_subsampling_then_windows_keep_the_stride():
    # Deliberate difference from the reference (see the module docstring): windows over the
    # subsampled list stay strided.
    compose = Compose([TemporalSubsampling(2), SlidingWindow(3, 3)])
    assert compose(frames(10)) == [[1, 3, 5], [7, 9, 7]]
    assert Compose([TemporalSubsampling(2), TemporalCenterCrop(2)])(frames(10)) == [3, 5]


def test_build_temporal_from_config():
    config = load_config(None, ["sample_duration=4", "n_val_samples=2", "inference_stride=3",
                                "sample_t_stride=1", "train_t_crop=center"], require_paths=())
    assert build_temporal(config, train=True)(frames(10)) == [4, 5, 6, 7]
    assert build_temporal(config, train=False)(frames(10)) == [[1, 2, 3, 4], [6, 7, 8, 9]]
    assert build_temporal(config, train=False, inference=True)(frames(8)) == [[1, 2, 3, 4], [4, 5, 6, 7],
                                                                             [7, 8, 7, 8]]
