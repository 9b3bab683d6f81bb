"""Spatial sampling on whole clips: geometry, per-clip randomness, flow flip, normalisation."""
import numpy as np
import pytest

from core.config import load_config
from core.spatial import (CORNER_CROP_SCALES, CenterCrop, Compose, CornerCrop, MultiScaleCornerCrop, Normalize,
                          RandomHorizontalFlip, RandomResizedCrop, Scale, ToFloat, build_spatial, mean_std)


def config(*overrides):
    return load_config(None, list(overrides), require_paths=())


def coordinate_clip(t, height, width):
    """Channel 0 = row, channel 1 = column, channel 2 = frame index."""
    rows, cols = np.mgrid[:height, :width]
    frame = np.stack([rows, cols, np.zeros_like(rows)], axis=-1)
    return np.stack([frame + [0, 0, i] for i in range(t)]).astype(np.uint8)


def test_scale_sets_the_short_side_and_truncates_the_long_one():
    assert Scale(16)(np.zeros((2, 21, 40, 3), np.uint8)).shape == (2, 16, 30, 3)
    assert Scale(16)(np.zeros((2, 40, 21, 3), np.uint8)).shape == (2, 30, 16, 3)
    assert Scale(32)(np.zeros((1, 8, 8, 2), np.uint8)).shape == (1, 32, 32, 2)


def test_center_crop_offsets_round_like_python():
    clip = coordinate_clip(2, 10, 13)
    out = CenterCrop(8)(clip)
    # (10 - 8) / 2 = 1; (13 - 8) / 2 = 2.5 rounds to 2 (Python's round, as torchvision).
    assert out.shape == (2, 8, 8, 3)
    assert out[0, 0, 0, 0] == 1 and out[0, 0, 0, 1] == 2


def test_corner_crop_positions():
    clip = coordinate_clip(1, 10, 12)
    assert tuple(CornerCrop(4, "tl")(clip)[0, 0, 0, :2]) == (0, 0)
    assert tuple(CornerCrop(4, "tr")(clip)[0, 0, 0, :2]) == (0, 8)
    assert tuple(CornerCrop(4, "bl")(clip)[0, 0, 0, :2]) == (6, 0)
    assert tuple(CornerCrop(4, "br")(clip)[0, 0, 0, :2]) == (6, 8)
    assert tuple(CornerCrop(4, "c")(clip)[0, 0, 0, :2]) == (3, 4)


def test_multi_scale_corner_crop_scales_and_shape():
    np.testing.assert_allclose(CORNER_CROP_SCALES, [1.0, 0.840896, 0.707107, 0.594604, 0.5], atol=1e-6)
    out = MultiScaleCornerCrop(8)(coordinate_clip(3, 32, 40), np.random.default_rng(0))
    assert out.shape == (3, 8, 8, 3)


def test_random_resized_crop_box_respects_scale_and_ratio():
    crop = RandomResizedCrop(16, scale=(0.25, 1.0), ratio=(0.75, 1 / 0.75))
    for seed in range(50):
        top, left, h, w = crop.crop_box(48, 64, np.random.default_rng(seed))
        assert 0 <= top and top + h <= 48 and 0 <= left and left + w <= 64
        assert 0.2 <= h * w / (48 * 64) <= 1.0
        assert 0.7 <= w / h <= 1.4
    assert crop(np.zeros((2, 48, 64, 3), np.uint8), np.random.default_rng(0)).shape == (2, 16, 16, 3)


def test_crop_and_flip_keep_shifted_frames_aligned():
    # Frame t is the base image shifted left by t columns; the same crop and flip on every frame keeps that.
    base = np.random.default_rng(0).integers(0, 256, (24, 40, 3), dtype=np.uint8)
    clip = np.stack([base[:, t:t + 32] for t in range(4)])
    transform = Compose([CornerCrop(16), RandomHorizontalFlip()])
    flips = set()
    for seed in range(12):
        out = transform(clip, np.random.default_rng(seed))
        flipped = np.array_equal(out[1:, :, 1:], out[:-1, :, :-1])
        unflipped = np.array_equal(out[1:, :, :-1], out[:-1, :, 1:])
        assert flipped != unflipped
        flips.add(flipped)
    assert flips == {True, False}


def test_resizing_crops_use_one_box_for_every_frame():
    # Frame t = base + 10 t: a shared crop box keeps the offsets (resizing is linear, +-1 for rounding).
    base = np.random.default_rng(1).integers(0, 200, (48, 64, 3), dtype=np.uint8)
    clip = np.stack([base + 10 * t for t in range(4)]).astype(np.uint8)
    for transform in (RandomResizedCrop(16, (0.25, 1.0)), MultiScaleCornerCrop(16)):
        for seed in range(5):
            out = transform(clip, np.random.default_rng(seed)).astype(int)
            for t in range(1, 4):
                assert np.abs(out[t] - out[0] - 10 * t).max() <= 1


def test_seeded_training_transform_is_reproducible():
    transform = build_spatial(config("sample_size=16"), train=True)
    clip = np.random.default_rng(2).integers(0, 256, (4, 32, 40, 3), dtype=np.uint8)
    first = transform(clip, np.random.default_rng(7))
    assert first.shape == (4, 16, 16, 3) and first.dtype == np.float32
    np.testing.assert_array_equal(first, transform(clip, np.random.default_rng(7)))
    assert not np.array_equal(first, transform(clip, np.random.default_rng(8)))


def test_flow_flip_negates_x():
    clip = np.random.default_rng(3).integers(0, 256, (2, 4, 6, 2), dtype=np.uint8)
    to_unit = Compose([ToFloat(), Normalize([0.5, 0.5], [0.5, 0.5])])
    flipped = Compose([RandomHorizontalFlip(p=1.0, flow=True), to_unit])(clip, np.random.default_rng(0))
    original = to_unit(clip)
    np.testing.assert_allclose(original, clip / 255 * 2 - 1, atol=1e-6)
    np.testing.assert_allclose(flipped[..., 0], -original[:, :, ::-1, 0], atol=1e-6)
    np.testing.assert_allclose(flipped[..., 1], original[:, :, ::-1, 1], atol=1e-6)


def test_to_float_and_normalize_values():
    clip = np.full((1, 1, 1, 3), 255, np.uint8)
    assert ToFloat(1)(clip)[0, 0, 0, 0] == pytest.approx(1.0)
    assert ToFloat(255)(clip)[0, 0, 0, 0] == pytest.approx(255.0)
    kinetics = Normalize(*mean_std(config()))(ToFloat(1)(clip))
    np.testing.assert_allclose(kinetics[0, 0, 0], [(1 - 0.4345) / 0.2768, (1 - 0.4051) / 0.2713,
                                                   (1 - 0.3775) / 0.2737], rtol=1e-5)


def test_mean_std_options():
    assert mean_std(config("mean_dataset=activitynet", "value_scale=255")) == (
        [0.4477 * 255, 0.4209 * 255, 0.3906 * 255], [0.2767 * 255, 0.2695 * 255, 0.2714 * 255])
    assert mean_std(config("no_mean_norm=true", "no_std_norm=true")) == ([0.0] * 3, [1.0] * 3)
    assert mean_std(config("modality=flow", "mean_dataset=kinetics")) == ([0.5, 0.5], [0.5, 0.5])


def test_i3d_inputs_span_minus_one_to_one():
    transform = build_spatial(config("mean_dataset=i3d", "sample_size=4"), train=False)
    clip = np.zeros((1, 4, 4, 3), np.uint8)
    clip[0, :2] = 255
    out = transform(clip)
    assert out.min() == pytest.approx(-1.0) and out.max() == pytest.approx(1.0)


def test_inference_nocrop_keeps_the_aspect_ratio():
    transform = build_spatial(config("sample_size=16", "inference_crop=nocrop"), train=False, inference=True)
    assert transform(np.zeros((2, 32, 40, 3), np.uint8)).shape == (2, 16, 20, 3)
    assert transform.min_short_side == 16
    assert build_spatial(config("sample_size=16", "train_crop=corner"), train=True).min_short_side == 32
