"""Spatial sampling on whole clips: geometry, per-clip randomness, flow flip, normalisation, loading."""
import cv2
import numpy as np
import pytest

from core.config import load_config
from core.frames import read_rgb_frames
from core.spatial import (CORNER_CROP_SCALES, CenterCrop, Compose, CornerCrop, MultiScaleCornerCrop, Normalize,
                          RandomHorizontalFlip, RandomResizedCrop, Region, Scale, build_spatial, mean_std)


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


def test_multi_scale_corner_crop_boxes():
    # kenshohara's: side int(short side * scale) = int(27 * 0.5) = 13 (not round's 14), at a corner or the
    # centre (round((27 - 13) / 2) = 7, round((36 - 13) / 2) = round(11.5) = 12). Output 13: no resizing.
    clip = coordinate_clip(2, 27, 36)
    crop = MultiScaleCornerCrop(13, scales=(0.5,))
    corners = set()
    for seed in range(40):
        out = crop(clip, np.random.default_rng(seed))
        top, left = out[0, 0, 0, :2]
        assert out.shape == (2, 13, 13, 3)
        np.testing.assert_array_equal(out, clip[:, top:top + 13, left:left + 13])
        corners.add((int(top), int(left)))
    assert corners == {(7, 12), (0, 0), (0, 23), (14, 0), (14, 23)}


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
    # Frame t = base + 10 t: a shared crop box keeps the offsets (resizing is linear, +-1 for each rounded pass:
    # a side shrunk 1.5x or more takes two, core.spatial.fast_resize).
    base = np.random.default_rng(1).integers(0, 200, (48, 64, 3), dtype=np.uint8)
    clip = np.stack([base + 10 * t for t in range(4)]).astype(np.uint8)
    for transform in (RandomResizedCrop(16, (0.25, 1.0)), MultiScaleCornerCrop(16)):
        for seed in range(5):
            out = transform(clip, np.random.default_rng(seed)).astype(int)
            for t in range(1, 4):
                assert np.abs(out[t] - out[0] - 10 * t).max() <= 2


def test_seeded_training_transform_is_reproducible():
    transform = build_spatial(config("sample_size=16"), train=True)
    clip = np.random.default_rng(2).integers(0, 256, (4, 32, 40, 3), dtype=np.uint8)
    first = transform(clip, np.random.default_rng(7))
    assert first.shape == (4, 16, 16, 3) and first.dtype == np.float32
    np.testing.assert_array_equal(first, transform(clip, np.random.default_rng(7)))
    assert not np.array_equal(first, transform(clip, np.random.default_rng(8)))


def test_flow_flip_negates_x():
    clip = np.random.default_rng(3).integers(0, 256, (2, 4, 6, 2), dtype=np.uint8)
    to_unit = Normalize([0.5, 0.5], [0.5, 0.5])
    flipped = Compose([RandomHorizontalFlip(p=1.0, flow=True), to_unit])(clip, np.random.default_rng(0))
    original = to_unit(clip)
    np.testing.assert_allclose(original, clip / 255 * 2 - 1, atol=1e-6)
    np.testing.assert_allclose(flipped[..., 0], -original[:, :, ::-1, 0], atol=1e-6)
    np.testing.assert_allclose(flipped[..., 1], original[:, :, ::-1, 1], atol=1e-6)


def test_normalize_values_and_channels_first_storage():
    clip = np.full((2, 1, 1, 3), 255, np.uint8)
    clip[1] = 0
    assert Normalize([0] * 3, [1] * 3)(clip)[0, 0, 0, 0] == pytest.approx(1.0)
    assert Normalize([0] * 3, [1] * 3, value_scale=255)(clip)[0, 0, 0, 0] == pytest.approx(255.0)
    kinetics = Normalize(*mean_std(config()))(clip)
    np.testing.assert_allclose(kinetics[0, 0, 0], [(1 - 0.4345) / 0.2768, (1 - 0.4051) / 0.2713,
                                                   (1 - 0.3775) / 0.2737], rtol=1e-5)
    np.testing.assert_allclose(kinetics[1, 0, 0], [-0.4345 / 0.2768, -0.4051 / 0.2713, -0.3775 / 0.2737], rtol=1e-5)
    # value_scale 255 with mean/std scaled alike gives the same numbers.
    np.testing.assert_allclose(Normalize(*mean_std(config("value_scale=255")), value_scale=255)(clip), kinetics,
                               rtol=1e-5)
    assert kinetics.transpose(3, 0, 1, 2).flags.c_contiguous


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


def test_bgr_feeds_rgb_frames_in_the_zoo_order_and_leaves_flow_alone():
    clip = np.zeros((1, 4, 4, 3), np.uint8)
    clip[..., 0] = 255  # pure red
    rgb = build_spatial(config("mean_dataset=i3d", "sample_size=4"), train=False)(clip)
    bgr = build_spatial(config("mean_dataset=i3d", "sample_size=4", "bgr=true"), train=False)(clip)
    assert rgb[..., 0].min() == bgr[..., 2].min() == pytest.approx(1.0)
    assert rgb[..., 2].max() == bgr[..., 0].max() == pytest.approx(-1.0)
    flow = np.zeros((1, 4, 4, 2), np.uint8)
    flow[..., 0] = 255
    out = build_spatial(config("modality=flow", "sample_size=4", "bgr=true"), train=False)(flow)
    assert out[..., 0].min() == pytest.approx(1.0) and out[..., 1].max() == pytest.approx(-1.0)


def test_inference_nocrop_keeps_the_aspect_ratio():
    transform = build_spatial(config("sample_size=16", "inference_crop=nocrop"), train=False, inference=True)
    assert transform(np.zeros((2, 32, 40, 3), np.uint8)).shape == (2, 16, 20, 3)


def test_region_reduction_is_what_the_resize_shrinks_anyway():
    # kenshohara's full-height corner crop of a 320 x 240 frame to 112: shrunk 2.14x, so decoded at 1/2.
    full_height = Region(0, 80, 240, 240, 112, 112)
    assert full_height.reduction() == 2
    assert full_height.reduced(2) == Region(0, 40, 120, 120, 112, 112)
    assert Region(39, 119, 201, 201, 112, 112).reduction() == 1
    assert Region(0, 0, 480, 500, 112, 112).reduction() == 4
    assert Region(0, 0, 64, 64, 112, 112).reduction() == 1  # enlarged
    # Odd edges round to the nearest reduced pixel.
    assert Region(3, 5, 230, 231, 112, 112).reduced(2) == Region(2, 2, 114, 116, 112, 112)


@pytest.fixture(scope="module")
def jpeg_video(tmp_path_factory):
    """6 frames of 48 x 64 smooth gradients with a moving blob, as quality-95 JPEGs."""
    video_dir = tmp_path_factory.mktemp("video")
    rows, cols = np.mgrid[:48, :64]
    for t in range(1, 7):
        frame = np.stack([rows * 4, cols * 3, np.full_like(rows, 40 * t)], axis=-1)
        frame[(rows - 20) ** 2 + (cols - 10 * t) ** 2 < 60] = 255
        cv2.imwrite(str(video_dir / f"image_{t:05d}.jpg"), frame.astype(np.uint8), [cv2.IMWRITE_JPEG_QUALITY, 95])
    return str(video_dir)


def load(transform, video_dir, indices, seed):
    reductions = []

    def read(reduction, each):
        reductions.append(reduction)
        return read_rgb_frames(video_dir, indices, reduction, each)

    return transform.load(read, (48, 64), np.random.default_rng(seed)), reductions


def test_load_at_full_resolution_equals_transforming_decoded_frames(jpeg_video):
    frames = read_rgb_frames(jpeg_video, [1, 2, 3, 2])
    for train in (False, True):
        transform = build_spatial(config("sample_size=16", "train_crop=random"), train=train)
        transform.reduced_decoding = False
        for seed in range(4):
            loaded, reductions = load(transform, jpeg_video, [1, 2, 3, 2], seed)
            assert reductions == [1]
            np.testing.assert_array_equal(loaded, transform(frames, np.random.default_rng(seed)))


def test_training_load_decodes_reduced_when_the_crop_shrinks_anyway(jpeg_video):
    frames = read_rgb_frames(jpeg_video, range(1, 7))
    # A 48 x 48 corner crop to 16 (3x) decodes at 1/2; values stay close to full decoding.
    train = Compose([MultiScaleCornerCrop(16, scales=(1.0,)), RandomHorizontalFlip()], reduced_decoding=True)
    for seed in range(5):
        loaded, reductions = load(train, jpeg_video, range(1, 7), seed)
        assert reductions == [2]
        exact = train(frames, np.random.default_rng(seed)).astype(float)
        assert np.abs(loaded - exact).mean() < 3
    # Validation (no reduced decoding) reads full frames even though Scale shrinks 3x.
    validation = build_spatial(config("sample_size=16"), train=False)
    assert load(validation, jpeg_video, [1], 0)[1] == [1]
