"""Temporal sampling: which frames of a video make a clip.

Frame indices are 1-based, as in the annotation segment ``[1, n_frames + 1)``
(``image_00001.jpg`` is frame 1). Every transform takes a list of indices and
returns either one clip (a list of indices) or several clips (a list of
lists), as kenshohara/3D-ResNets-PyTorch's ``temporal_transforms.py`` does.
Random transforms draw from the numpy ``Generator`` passed in the call, so a
seed reproduces a clip exactly; the deterministic ones ignore it.

Kenshohara's arithmetic, reproduced here (n = number of input indices):

- Loop padding: a clip shorter than ``size`` repeats its indices cyclically,
  ``[1, 2, 3]`` padded to 7 is ``[1, 2, 3, 1, 2, 3, 1]``; a longer list is
  returned unchanged.
- Center crop: begins at ``max(0, n // 2 - size // 2)``.
- Random crop: begins uniformly in ``[0, max(0, n - size - 1)]`` (the last
  possible start, ``n - size``, is never drawn: the reference's ``- 1``).
- Even crop: ``stride = max(1, ceil((n - 1 - size) / (n_samples - 1)))``
  (1 when ``n_samples == 1``); clips start every ``stride`` indices; it stops
  after ``n_samples`` clips or after the first clip that had to be
  loop-padded, so a short video yields fewer clips.
- Sliding window: clips start every ``stride`` indices (``stride=0`` means
  ``size``); it stops after the first loop-padded clip.

Multi-view testing (``n_inference_clips``) follows MMAction2 instead:
``EvenlySpacedClips`` is its ``SampleFrames(test_mode=True)``, on the whole
frame list with ``sample_t_stride`` as its ``frame_interval``.

One deliberate difference: the reference's even crop and sliding window
build each window as ``range(first_index, first_index + size)``, which
silently undoes a preceding ``TemporalSubsampling``. Here a window is
``size`` consecutive *entries* of the input list, so with ``sample_t_stride``
> 1 evaluation clips have the same stride as training clips. On contiguous
input (``sample_t_stride`` 1, the reference's default) both give identical
indices.
"""
import math

import numpy as np

from core import archs


def loop_pad(frame_indices, size):
    """Repeat `frame_indices` cyclically up to `size` entries (unchanged if already long enough)."""
    if len(frame_indices) >= size or not frame_indices:
        return list(frame_indices)
    return [frame_indices[i % len(frame_indices)] for i in range(size)]


class LoopPadding:
    def __init__(self, size):
        self.size = size

    def __call__(self, frame_indices, rng=None):
        return loop_pad(frame_indices, self.size)


class TemporalBeginCrop:
    def __init__(self, size):
        self.size = size

    def __call__(self, frame_indices, rng=None):
        return loop_pad(frame_indices[:self.size], self.size)


class TemporalCenterCrop:
    def __init__(self, size):
        self.size = size

    def __call__(self, frame_indices, rng=None):
        begin = max(0, len(frame_indices) // 2 - self.size // 2)
        return loop_pad(frame_indices[begin:begin + self.size], self.size)


class TemporalRandomCrop:
    def __init__(self, size):
        self.size = size

    def __call__(self, frame_indices, rng):
        last_begin = max(0, len(frame_indices) - self.size - 1)
        begin = int(rng.integers(0, last_begin + 1))
        return loop_pad(frame_indices[begin:begin + self.size], self.size)


def _windows(frame_indices, size, stride, max_clips):
    """Clips of `size` entries starting every `stride` entries; stop after the first padded one."""
    clips = []
    for begin in range(0, len(frame_indices), stride):
        if len(clips) >= max_clips:
            break
        clip = frame_indices[begin:begin + size]
        clips.append(loop_pad(clip, size))
        if len(clip) < size:
            break
    return clips


class TemporalEvenCrop:
    """`n_samples` clips spread evenly over the video (kenshohara's validation)."""

    def __init__(self, size, n_samples=1):
        self.size = size
        self.n_samples = n_samples

    def __call__(self, frame_indices, rng=None):
        stride = 1
        if self.n_samples > 1:
            stride = max(1, math.ceil((len(frame_indices) - 1 - self.size) / (self.n_samples - 1)))
        return _windows(frame_indices, self.size, stride, self.n_samples)


class SlidingWindow:
    """Every clip of `size` frames, one every `stride` frames (kenshohara's inference)."""

    def __init__(self, size, stride=0):
        self.size = size
        self.stride = stride or size

    def __call__(self, frame_indices, rng=None):
        return _windows(frame_indices, self.size, self.stride, math.inf)


class EvenlySpacedClips:
    """`n_clips` clips of `size` frames every `interval` frames, evenly spaced: MMAction2's
    SampleFrames(clip_len=size, frame_interval=interval, num_clips=n_clips, test_mode=True), as on its main
    branch (1.x, commit 4d6c934, mmaction/datasets/transforms/loading.py `_get_test_clips` and `transform`).

    On n frames a clip spans (size - 1) * interval + 1 of them; the last start is max_offset = max(0, n -
    span). One clip starts at max_offset // 2; several at round(i * max_offset / (n_clips - 1)) (numpy's
    round: halves to even), so the first starts at the first frame and the last ends at the last one.
    Positions past the end wrap around (`np.mod`, MMAction2's out_of_bound_opt 'loop'): a video shorter
    than a clip gives n_clips identical clips, each looping over the video. With size 1 (its 2D branch)
    clip i is the frame at int((i + 1/2) * n / n_clips). Not reproduced: twice_sample, target_fps, and
    0.x's offsets (a 3D clip at avg_interval / 2 into each of n_clips segments).
    """

    def __init__(self, size, n_clips, interval=1):
        self.size = size
        self.n_clips = n_clips
        self.interval = interval

    def starts(self, n_frames):
        """The clips' first positions in a video of `n_frames` frames (0-based)."""
        if self.size == 1:
            average = n_frames / self.n_clips
            return [int(i * average + average / 2.0) for i in range(self.n_clips)]
        max_offset = max(n_frames - ((self.size - 1) * self.interval + 1), 0)
        if self.n_clips == 1:
            return [max_offset // 2]
        return [int(start) for start in np.round(np.arange(self.n_clips) * (max_offset / (self.n_clips - 1)))]

    def __call__(self, frame_indices, rng=None):
        n = len(frame_indices)
        return [[frame_indices[(start + k * self.interval) % n] for k in range(self.size)]
                for start in self.starts(n)]


class TemporalSubsampling:
    """Keep every `stride`-th frame (`sample_t_stride`)."""

    def __init__(self, stride):
        self.stride = stride

    def __call__(self, frame_indices, rng=None):
        return frame_indices[::self.stride]


class Compose:
    """Apply transforms in order; once one has cut several clips, the rest apply to each clip."""

    def __init__(self, transforms):
        self.transforms = list(transforms)

    def __call__(self, frame_indices, rng=None):
        for i, transform in enumerate(self.transforms):
            if frame_indices and isinstance(frame_indices[0], list):
                rest = Compose(self.transforms[i:])
                return [rest(clip, rng) for clip in frame_indices]
            frame_indices = transform(frame_indices, rng)
        return frame_indices


def segment_offsets(n_frames, num_segments, mode, rng=None, new_length=1):
    """0-based offsets of TSN's frames: one per segment, as yjxiong/tsn-pytorch dataset.py (commit 2f0468e)
    TSNDataSet, whose 1-based indices are these + 1.

    "train" (_sample_indices): segments of d = (n - new_length + 1) // num_segments frames, a random offset
    in each; a video shorter than num_segments segments of one frame but longer than num_segments frames
    draws num_segments sorted frames anywhere; a shorter one repeats frame 0. "val" (_get_val_indices):
    the centre of each of num_segments equal (fractional) segments, int(tick / 2 + tick * i), frame 0 for
    every segment when n <= num_segments + new_length - 1. "test" (_get_test_indices): those centres always.
    Random draws come from the numpy Generator `rng` (his np.random.randint).
    """
    usable = n_frames - new_length + 1
    if mode == "train":
        average = usable // num_segments
        if average > 0:
            return [i * average + int(o) for i, o in enumerate(rng.integers(average, size=num_segments))]
        if n_frames > num_segments:
            return sorted(int(o) for o in rng.integers(usable, size=num_segments))
        return [0] * num_segments
    if mode == "val" and n_frames <= num_segments + new_length - 1:
        return [0] * num_segments
    tick = usable / float(num_segments)
    return [int(tick / 2.0 + tick * i) for i in range(num_segments)]


class TemporalSegments:
    """TSN's sampling (segment_offsets): one clip of `num_segments` frames of the input indices; "val" and
    "test" return it as a list of one clip (what EvalDataset iterates)."""

    def __init__(self, num_segments, mode):
        self.num_segments = num_segments
        self.mode = mode

    def __call__(self, frame_indices, rng=None):
        clip = [frame_indices[o] for o in segment_offsets(len(frame_indices), self.num_segments, self.mode, rng)]
        return clip if self.mode == "train" else [clip]


def build_temporal(config, train, inference=False):
    """The temporal sampling of kenshohara's main.py for training, validation or inference.

    training: [TemporalSubsampling] + random or center crop of `sample_duration`;
    validation: [TemporalSubsampling] + `n_val_samples` even crops;
    inference: [TemporalSubsampling] + sliding window with `inference_stride`, or, with `n_inference_clips`,
    MMAction2's evenly spaced test clips (EvenlySpacedClips, sample_t_stride as their frame interval).
    TSN models (their spec's `segments`) take one frame per segment instead (TemporalSegments):
    `num_segments` random ones in training and centred ones in validation, `test_segments` centred ones in
    inference (his main.py and test_models.py).
    """
    if train and inference:
        raise ValueError("build_temporal: train and inference are exclusive")
    if inference and config.n_inference_clips:
        return Compose([EvenlySpacedClips(config.sample_duration, config.n_inference_clips, config.sample_t_stride)])
    transforms = []
    if config.sample_t_stride > 1:
        transforms.append(TemporalSubsampling(config.sample_t_stride))
    if archs.get(archs.arch_name(config)).segments:
        mode = "train" if train else "test" if inference else "val"
        transforms.append(TemporalSegments(config.test_segments if inference else config.num_segments, mode))
    elif train:
        crop = TemporalRandomCrop if config.train_t_crop == "random" else TemporalCenterCrop
        transforms.append(crop(config.sample_duration))
    elif inference:
        transforms.append(SlidingWindow(config.sample_duration, config.inference_stride))
    else:
        transforms.append(TemporalEvenCrop(config.sample_duration, config.n_val_samples))
    return Compose(transforms)
