"""Multi-view testing (MMAction2's clips and three crops) and kenshohara's colour jitter, in core (#20).

The references are written out: MMAction2 main (1.x, commit 4d6c934) SampleFrames(test_mode=True) and ThreeCrop
(mmaction/datasets/transforms/loading.py, processing.py) as expected numbers and as a transcription of their
arithmetic; torchvision's ColorJitter on PIL images as the PIL calls of its _functional_pil (torchvision itself
has no CPU build here).
"""
import json
import os

import cv2
import numpy as np
import pytest
from PIL import Image, ImageEnhance

from core import metrics
from core.config import ConfigError, load_config
from core.datasets import evaluation_set
from core.evaluation import score_videos
from core.spatial import ColorJitter, ThreeCrop, build_spatial
from core.temporal import EvenlySpacedClips, build_temporal


def frames(n):
    return list(range(1, n + 1))


def mmaction2_test_offsets(num_frames, clip_len, frame_interval, num_clips):
    """SampleFrames._get_test_clips + transform (out_of_bound_opt 'loop', start_index 1), transcribed."""
    if clip_len == 1:
        avg_interval = num_frames / float(num_clips)
        clip_offsets = np.arange(num_clips) * avg_interval + avg_interval / 2.0
    else:
        max_offset = max(num_frames - ((clip_len - 1) * frame_interval + 1), 0)
        if num_clips > 1:
            clip_offsets = np.round(np.arange(num_clips) * (max_offset / float(num_clips - 1)))
        else:
            clip_offsets = np.array([max_offset // 2])
    frame_inds = clip_offsets[:, None] + np.arange(clip_len)[None, :] * frame_interval
    return (np.mod(frame_inds, num_frames) + 1).astype(np.int32).tolist()


def test_evenly_spaced_clips_start_where_mmaction2_starts_them():
    # 100 frames, 8 x 2 clips (span 15): max_offset 85, starts round(i * 85 / 9).
    assert EvenlySpacedClips(8, 10, 2).starts(100) == [0, 9, 19, 28, 38, 47, 57, 66, 76, 85]
    assert EvenlySpacedClips(4, 4).starts(13) == [0, 3, 6, 9]
    assert EvenlySpacedClips(4, 3).starts(9) == [0, 2, 5]  # 2.5 rounds to even, as np.round
    assert EvenlySpacedClips(4, 1).starts(20) == [8]  # one clip: max_offset // 2
    assert EvenlySpacedClips(1, 4).starts(10) == [1, 3, 6, 8]  # 2D branch: int((i + 1/2) * 10 / 4)
    # Shorter than a clip: every clip starts at the first frame and loops over the video.
    assert EvenlySpacedClips(8, 3)(frames(5)) == [[1, 2, 3, 4, 5, 1, 2, 3]] * 3
    assert EvenlySpacedClips(4, 1, 2)(frames(6)) == [[1, 3, 5, 1]]
    for n in (1, 3, 7, 15, 16, 17, 40, 101):
        for clip_len, interval, num_clips in ((8, 1, 10), (4, 2, 3), (16, 4, 1), (1, 1, 5), (3, 3, 2)):
            assert EvenlySpacedClips(clip_len, num_clips, interval)(frames(n)) == \
                mmaction2_test_offsets(n, clip_len, interval, num_clips), (n, clip_len, interval, num_clips)


def test_clips_keep_the_segment_frame_numbers_and_the_config_selects_them():
    # A segment starting at frame 5 (12 frames, span 7, max_offset 5): positions into the segment's frames.
    assert EvenlySpacedClips(4, 2, 2)(list(range(5, 17))) == [[5, 7, 9, 11], [10, 12, 14, 16]]
    config = load_config(None, ["sample_duration=4", "sample_t_stride=2", "n_inference_clips=2"], require_paths=())
    assert build_temporal(config, train=False, inference=True)(frames(12)) == [[1, 3, 5, 7], [6, 8, 10, 12]]
    sliding = load_config(None, ["sample_duration=4", "inference_stride=4"], require_paths=())
    assert build_temporal(sliding, train=False, inference=True)(frames(8)) == [[1, 2, 3, 4], [5, 6, 7, 8]]


def mmaction2_three_crop_offsets(img_h, img_w, crop):
    """ThreeCrop.transform's offsets as (top, left), transcribed (it lists (x, y))."""
    if crop == img_h:
        w_step = (img_w - crop) // 2
        return [(0, 0), (0, 2 * w_step), (0, w_step)]
    h_step = (img_h - crop) // 2
    return [(0, 0), (2 * h_step, 0), (h_step, 0)]


def test_three_crop_offsets_after_the_short_side_scale():
    spatial = build_spatial(load_config(None, ["sample_size=32", "inference_crop=three"],
                                        require_paths=()), train=False, inference=True)
    assert spatial.n_views == 3
    for (height, width), expected in {(48, 64): [(0, 0), (0, 10), (0, 5)],  # scaled to 32 x 42: step 5
                                      (64, 48): [(0, 0), (10, 0), (5, 0)],
                                      (240, 320): [(0, 0), (0, 10), (0, 5)],
                                      (36, 112): [(0, 0), (0, 66), (0, 33)],  # 32 x 99: step 67 // 2, one column unused
                                      (40, 40): [(0, 0)] * 3}.items():
        scaled = spatial.transforms[0].region(height, width)
        assert ThreeCrop(32).offsets(scaled.out_height, scaled.out_width) == expected == \
            mmaction2_three_crop_offsets(scaled.out_height, scaled.out_width, 32)
    clip = np.arange(2 * 3 * 32 * 42, dtype=np.float32).reshape(2, 3, 32, 42)
    views = spatial.split(clip)
    assert [v.shape for v in views] == [(2, 3, 32, 32)] * 3
    assert np.array_equal(views[1], clip[..., 10:42]) and np.array_equal(views[2], clip[..., 5:37])
    with pytest.raises(ValueError, match="side of 32"):
        ThreeCrop(32).offsets(40, 50)


@pytest.fixture(scope="module")
def tiny_videos(tmp_path_factory):
    """Two videos of 48 x 64 frames: 9 and 3 frames (shorter than a 4-frame clip)."""
    root = tmp_path_factory.mktemp("views")
    rng = np.random.default_rng(0)
    database = {}
    for video_id, n in (("long", 9), ("short", 3)):
        os.makedirs(root / "frames" / "a" / video_id)
        for t in range(1, n + 1):
            cv2.imwrite(str(root / "frames" / "a" / video_id / f"image_{t:05d}.jpg"),
                        rng.integers(0, 256, (48, 64, 3), dtype=np.uint8))
        database[video_id] = {"subset": "validation", "annotations": {"label": "a", "segment": [1, n + 1]}}
    with open(root / "annotation.json", "w") as f:
        json.dump({"labels": ["a", "b"], "database": database}, f)
    return root


def views_config(root, *overrides):
    return load_config(None, [f"video_path={root / 'frames'}", f"annotation_path={root / 'annotation.json'}",
                              "sample_size=32", "sample_duration=4", "n_classes=2",
                              "batch_size=4", "n_threads=0", *overrides])


def test_evaluation_scores_every_view_and_averages_their_softmax(tiny_videos):
    config = views_config(tiny_videos, "inference_crop=three", "n_inference_clips=3")
    dataset = evaluation_set(config)
    assert len(dataset) == 2 * 3 * 3 and dataset.clips_per_video.tolist() == [3, 3]
    assert [frames for _, frames in dataset.clips] == [[1, 2, 3, 4], [3, 4, 5, 6], [6, 7, 8, 9]] + [[1, 2, 3, 1]] * 3
    whole = evaluation_set(views_config(tiny_videos, "inference_crop=nocrop", "n_inference_clips=3"))
    for index in range(len(dataset)):  # view k of clip c: the k-th MMAction2 crop of the whole scaled clip
        clip, view = divmod(index, 3)
        left = (0, 10, 5)[view]
        assert np.array_equal(dataset[index][0], whole[clip][0][..., left:left + 32])

    def predict(x):  # a deterministic "model": two logits from each view's mean and left-right contrast
        return np.stack([x.mean(axis=(1, 2, 3, 4)) * 4, (x[..., :16] - x[..., 16:]).mean(axis=(1, 2, 3, 4)) * 9], 1)

    scores, _, _ = score_videos(config, predict, "validation")
    views = np.stack([dataset[i][0] for i in range(len(dataset))])
    expected = metrics.softmax(predict(views)).reshape(2, 9, 2).mean(1)  # MMAction2's average_clips='prob'
    assert np.abs(scores.probs - expected).max() < 1e-6
    assert np.abs(scores.probs[0] - scores.probs[1]).max() > 1e-3  # the views differ between the videos


def pil_colour_jitter(image, adjustments):
    """torchvision's ColorJitter on one PIL image with drawn factors: _functional_pil's adjust_* calls."""
    for name, factor in adjustments:
        if name == "brightness":
            image = ImageEnhance.Brightness(image).enhance(factor)
        elif name == "contrast":
            image = ImageEnhance.Contrast(image).enhance(factor)
        elif name == "saturation":
            image = ImageEnhance.Color(image).enhance(factor)
        else:
            h, s, v = image.convert("HSV").split()
            np_h = np.array(h, dtype=np.uint8)
            with np.errstate(over="ignore"):
                np_h += np.uint8(int(factor * 255) % 256)  # np.uint8(hue_factor * 255), which wraps on x86
            image = Image.merge("HSV", (Image.fromarray(np_h, "L"), s, v)).convert("RGB")
    return image


@pytest.mark.parametrize("strengths", [(0.4, 0.4, 0.4, 0.1), (0.9, 0.9, 0.9, 0.5), (0, 0.6, 0, 0.3), (1.5, 0, 0, 0)])
def test_colour_jitter_matches_torchvision_on_pil_frames(strengths):
    rng = np.random.default_rng(1)
    clip = rng.integers(0, 256, (4, 20, 24, 3), dtype=np.uint8)
    clip[1] //= 3  # a dark frame: its own contrast mean
    jitter = ColorJitter(*strengths)
    worst = 0
    for seed in range(6):
        adjustments = jitter.draw(np.random.default_rng(seed))
        assert len(adjustments) == sum(s > 0 for s in strengths)
        for name, factor in adjustments:
            strength = strengths[("brightness", "contrast", "saturation", "hue").index(name)]
            low, high = (-strength, strength) if name == "hue" else (max(0, 1 - strength), 1 + strength)
            assert low <= factor <= high
        ours = jitter(clip, np.random.default_rng(seed))
        reference = np.stack([np.asarray(pil_colour_jitter(Image.fromarray(frame), adjustments)) for frame in clip])
        assert ours.dtype == np.uint8 and ours.shape == clip.shape
        worst = max(worst, np.abs(ours.astype(int) - reference).max())
        assert np.abs(ours.astype(int) - clip).max() > 0
    assert worst <= 1  # measured: 0 (Pillow 13)


def test_colour_jitter_is_in_rgb_training_only_and_off_by_default():
    def names(*overrides, train=True):
        config = load_config(None, list(overrides), require_paths=())
        return [type(t).__name__ for t in build_spatial(config, train=train).transforms]

    assert "ColorJitter" not in names()  # his ColorJitter() defaults: all 0, and no draws from the clip's rng
    assert names("colorjitter=[0.4, 0.4, 0.4, 0.1]")[-2:] == ["ColorJitter", "Normalize"]
    assert "ColorJitter" not in names("colorjitter=[0.4, 0.4, 0.4, 0.1]", train=False)
    assert "ColorJitter" not in names("colorjitter=[0.4, 0.4, 0.4, 0.1]", "modality=flow")
    with pytest.raises(ConfigError, match="hue at most 0.5"):
        load_config(None, ["colorjitter=[0.4, 0.4, 0.4, 0.6]"], require_paths=())
    with pytest.raises(ConfigError, match="colorjitter"):
        load_config(None, ["colorjitter=[0.4, 0.4]"], require_paths=())


def test_kenshohara_colorjitter_flag_is_his_no_op(capsys):
    import argparse

    from core.config import add_config_arguments, add_kenshohara_arguments, config_from_args
    parser = add_kenshohara_arguments(add_config_arguments(argparse.ArgumentParser()), modes=True)
    config = config_from_args(parser.parse_args(["--colorjitter"]), require_paths=())
    assert config["colorjitter"] == [0, 0, 0, 0]
    assert "changes no pixel" in capsys.readouterr().err
    config = config_from_args(parser.parse_args(["--colorjitter", "--set", "colorjitter=[0.4, 0.4, 0.4, 0.1]"]),
                              require_paths=())
    assert config["colorjitter"] == [0.4, 0.4, 0.4, 0.1]


def test_predict_scores_the_same_views():
    from core.predict import VideoScorer, _clip, _Stream

    def predict(x):
        return np.stack([x.mean(axis=(1, 2, 3, 4)), x[..., :8].mean(axis=(1, 2, 3, 4))], 1)

    def model(*overrides):
        config = load_config(None, ["sample_size=32", "sample_duration=4", "batch_size=4", "n_inference_clips=3",
                                    *overrides], require_paths=())
        stream = _Stream(config)
        for frame in raw:
            stream.add(frame)
        return VideoScorer([(config, predict)]).models[0], stream

    rng = np.random.default_rng(0)
    raw = [rng.integers(0, 256, (48, 64, 3), dtype=np.uint8) for _ in range(9)]
    (three, stream), (whole, _) = model("inference_crop=three"), model("inference_crop=nocrop")
    scored = VideoScorer._score(three, stream, 25.0)
    assert scored["windows"] == [(1, 4)] * 3 + [(3, 6)] * 3 + [(6, 9)] * 3
    clips = [_clip(whole[2], stream, window) for window in ([1, 2, 3, 4], [3, 4, 5, 6], [6, 7, 8, 9])]
    expected = predict(np.stack([clip[..., left:left + 32] for clip in clips for left in (0, 10, 5)]))
    assert np.abs(scored["logits"] - expected).max() < 1e-6
