"""Datasets of clips read from extracted frames, as numpy arrays.

The annotation file is kenshohara's JSON (``labels`` and ``database``, each
video with its ``subset`` and ``annotations: {label, segment: [1, n + 1]}``);
the frames of a video are at ``<video_path>/<label>/<video_id>/``. As in the
reference, clips are sampled from the frames ``range(*segment)``, a video of
the subset whose folder does not exist is skipped (the count is reported on
stderr), and a video without a label (test subset) is looked for under
``<video_path>/test/`` and gets label -1.

Items are ``float32 C x T x H x W`` clips. Random sampling of item ``i`` in
epoch ``e`` draws from ``np.random.default_rng([seed, e, i])``, so a clip
depends neither on the worker process that loads it nor on where training
resumed.

Flow modality: the folders are under the config's ``flow_path`` instead of
``video_path``, named by ``flow_template`` (core.flow writes them). Pair i
is the motion from frame i to i + 1, so a segment ``[s, e)`` has the pairs
``s .. e - 2``; the temporal sampling runs over them and loop-pads like RGB.
The sets built from a config yield 2 x T x H x W flow (x, y) in [-1, 1];
their horizontal flip negates x (core.spatial).
"""
import contextlib
import functools
import json
import os
import sys

import numpy as np

from core.frame_cache import FrameCache
from core.frames import (FLOW_TEMPLATE, RGB_TEMPLATE, FrameError, check_flow_alignment, flow_frame_name, frame_size,
                         read_flow_frames, read_rgb_frames)
from core.loader import TooManyBadClips
from core.spatial import build_spatial
from core.temporal import build_temporal


# Training replaces an unreadable clip by another video's; this many draws may fail before the item does.
MAX_REPLACEMENTS = 10


class AnnotationError(ValueError):
    """An annotation file that does not fit kenshohara's format."""


# While read_once() is active: {(path, size, modification time): parsed JSON}; None otherwise.
_parsed = None


@contextlib.contextmanager
def read_once():
    """Within it, each annotation file is parsed once however many times it is loaded (training's start-up
    loads its file for the label check, the training set and the validation set); nothing is kept after."""
    global _parsed
    _parsed = {}
    try:
        yield
    finally:
        _parsed = None


def _read_json(path):
    if _parsed is None:
        with open(path) as f:
            return json.load(f)
    status = os.stat(path)
    key = (os.path.abspath(path), status.st_size, status.st_mtime_ns)
    if key not in _parsed:
        with open(path) as f:
            _parsed[key] = json.load(f)
    return _parsed[key]


def load_annotations(annotation_path, subset, folders=None):
    """(class_names, [(video_id, label name or None, (first frame, last frame + 1)), ...]) of `subset`.

    A video without a segment (listed but without frames, as kenshohara's kinetics_json.py keeps them)
    has segment None. `folders`, a dict, receives {video_id: frames folder relative to the root} of the
    entries that name one in 'video' (ActivityNet's segments share their video's v_<id>); the others are
    at <label>/<video_id>.
    """
    try:
        data = _read_json(annotation_path)
        class_names = data["labels"]
        if not (isinstance(class_names, list) and all(isinstance(name, str) for name in class_names)):
            raise AnnotationError(f"{annotation_path}: 'labels' is {_short(class_names)}, expected a list of "
                                  "label names")
        if not isinstance(data["database"], dict):
            raise AnnotationError(f"{annotation_path}: 'database' is {_short(data['database'])}, expected a "
                                  "mapping of video ids to entries")
        known = set(class_names)
        videos = []
        for video_id, entry in data["database"].items():
            if not isinstance(entry, dict) or not isinstance(entry.get("subset"), str):
                raise AnnotationError(f"{annotation_path}: video '{video_id}' has subset "
                                      f"{_short(entry.get('subset') if isinstance(entry, dict) else entry)}, "
                                      "expected 'training', 'validation' or 'testing'")
            if entry["subset"] != subset:
                continue
            annotation = entry.get("annotations", {})
            if not isinstance(annotation, dict):
                raise AnnotationError(f"{annotation_path}: video '{video_id}' has annotations "
                                      f"{_short(annotation)}, expected {{label, segment}}")
            segment = annotation.get("segment")
            if segment is None:  # kenshohara's Kinetics / ActivityNet JSON keep videos without frames so
                videos.append((video_id, annotation.get("label"), None))  # (no segment)
                continue
            if not (isinstance(segment, list) and len(segment) == 2 and all(type(i) is int for i in segment)):
                raise AnnotationError(f"{annotation_path}: video '{video_id}' has segment {segment!r}, expected "
                                      "[first frame, last frame + 1] (integers)")
            label = annotation.get("label")
            if label is not None and (not isinstance(label, str) or label not in known):
                raise AnnotationError(f"{annotation_path}: video '{video_id}' has label {_short(label)}, which is "
                                      "not in 'labels'")
            videos.append((video_id, label, tuple(segment)))
            if "video" in entry and folders is not None:
                folders[video_id] = entry["video"]
    except (OSError, json.JSONDecodeError, KeyError, TypeError) as e:
        raise AnnotationError(f"{annotation_path}: not a valid annotation file ({type(e).__name__}: {e})") from None
    return class_names, videos


def _short(value):
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


class VideoDataset:
    """One clip per video and item: (float32 C x T x H x W, int label), e.g. for training.

    `spatial` and `temporal` are the transforms of core.spatial / core.temporal
    (see build_spatial / build_temporal); `temporal` must cut one clip.
    `frame_cache` (a core.frame_cache.FrameCache) keeps JPEG frames once decoded.
    """

    def __init__(self, annotation_path, video_path, subset, spatial, temporal, modality="rgb",
                 flow_template=FLOW_TEMPLATE, seed=0, frame_source="frames", frame_cache=None):
        if modality not in ("rgb", "flow"):
            raise ValueError(f"modality must be rgb or flow, got {modality!r}")
        if frame_source == "video" and modality != "rgb":
            raise ValueError("frame_source video reads RGB clips; flow needs its frames (core.flow)")
        self.frame_source = frame_source
        self.frame_cache = frame_cache
        self.video_indices = {}  # video index -> core.video_clips.VideoIndex (frame_source video)
        self.spatial = spatial
        self.temporal = temporal
        self.modality = modality
        self.flow_template = flow_template
        self.seed = seed
        self.epoch = 0
        self.frame_sizes = {}  # video index -> (height, width), read from a frame header once
        folders = {}
        self.class_names, videos = load_annotations(annotation_path, subset, folders)
        class_index = {name: i for i, name in enumerate(self.class_names)}
        self.video_ids, self.labels, self.video_dirs, self.first_frames, self.n_frames = [], [], [], [], []
        missing, without_frames = [], []
        self.n_listed = len(videos)  # the subset's videos in the annotation, with frames or not
        for video_id, label, segment in videos:
            if segment is None:
                without_frames.append(video_id)
                continue
            first_frame, end_frame = segment
            video_dir = os.path.join(video_path, folders.get(video_id) or os.path.join(
                label if label is not None else "test", video_id))
            n_frames = end_frame - first_frame - (modality == "flow")
            if frame_source == "video":  # the video file <video_path>/<label>/<video_id>.<ext> itself
                from core.video_clips import find_video_file  # PyAV: imported by the runs that decode videos
                video_dir = find_video_file(video_dir) or video_dir + ".<mp4|mkv|webm|avi|...>"
            if not (os.path.isfile if frame_source == "video" else os.path.isdir)(video_dir):
                missing.append(video_dir)
                continue
            if n_frames < 1:
                continue
            first, last = ((flow_frame_name(flow_template, first_frame, "x"),
                            flow_frame_name(flow_template, end_frame - 2, "y")) if modality == "flow"
                           else (RGB_TEMPLATE.format(first_frame), RGB_TEMPLATE.format(end_frame - 1)))
            # One stat per video. A folder without its first frame either (emptied) is bad data, met and skipped
            # when loading; one that ends early contradicts the annotation.
            if not os.path.exists(os.path.join(video_dir, last)) and os.path.exists(os.path.join(video_dir, first)):
                raise AnnotationError(f"{annotation_path}: video '{video_id}' has segment [{first_frame}, "
                                      f"{end_frame}], past its frames in {video_dir} ({last} does not exist)")
            self.video_ids.append(video_id)
            self.labels.append(class_index[label] if label is not None else -1)
            self.video_dirs.append(video_dir)
            self.first_frames.append(first_frame)
            self.n_frames.append(n_frames)
        if without_frames:
            print(f"{annotation_path}: {len(without_frames)} of {len(videos)} '{subset}' videos have no frames (no "
                  f"segment; first: {without_frames[0]}); skipped", file=sys.stderr)
        if missing:
            print(f"{annotation_path}: {len(missing)} of {len(videos)} '{subset}' videos have no frame folder "
                  f"(first: {missing[0]}); skipped", file=sys.stderr)
        if not self.video_ids:
            raise AnnotationError(f"{annotation_path}: no '{subset}' video with frames under {video_path}")

    def set_epoch(self, epoch):
        self.epoch = epoch

    def __len__(self):
        return len(self.video_ids)

    def frame_indices(self, video_index):
        """The frames (RGB) or flow pairs of video `video_index` that clips are sampled from."""
        first = self.first_frames[video_index]
        return list(range(first, first + self.n_frames[video_index]))

    def rng(self, index):
        return np.random.default_rng([self.seed, self.epoch, index])

    def read_clip(self, video_index, frame_indices, rng):
        """Frames `frame_indices` of video `video_index` through the spatial transform, as C x T x H x W."""
        video_dir = self.video_dirs[video_index]
        if self.frame_source == "video":
            from core.video_clips import VideoIndex
            if video_index not in self.video_indices:
                self.video_indices[video_index] = VideoIndex(video_dir)
            video = self.video_indices[video_index]
            clip = self.spatial.load(lambda reduction, each: video.read(frame_indices, each),
                                     (video.height, video.width), rng)
            return np.ascontiguousarray(clip.transpose(3, 0, 1, 2), dtype=np.float32)
        if self.modality == "flow":
            first = flow_frame_name(self.flow_template, frame_indices[0], "x")
            read = functools.partial(read_flow_frames, video_dir, frame_indices, self.flow_template,
                                     cache=self.frame_cache)
        else:
            first = RGB_TEMPLATE.format(frame_indices[0])
            read = functools.partial(read_rgb_frames, video_dir, frame_indices, cache=self.frame_cache)
        if video_index not in self.frame_sizes:
            self.frame_sizes[video_index] = frame_size(video_dir, first)
        clip = self.spatial.load(read, self.frame_sizes[video_index], rng)
        return np.ascontiguousarray(clip.transpose(3, 0, 1, 2), dtype=np.float32)

    def __getitem__(self, index):
        rng = self.rng(index)
        frame_indices = self.temporal(self.frame_indices(index), rng)
        return self.read_clip(index, frame_indices, rng), self.labels[index]

    def load(self, index, skipped):
        """Item `index`; when its clip cannot be read (core.frames.FrameError), the clip of another video drawn
        from (seed, epoch, index) alone, so a resumed run draws the same. Each unreadable clip is appended to
        `skipped` as (video index, problem); core.loader counts and reports them."""
        rng, video = self.rng(index), index
        for attempt in range(1, MAX_REPLACEMENTS + 2):
            try:
                return self.read_clip(video, self.temporal(self.frame_indices(video), rng), rng), self.labels[video]
            except FrameError as error:
                skipped.append((video, str(error)))
            rng = np.random.default_rng([self.seed, self.epoch, index, attempt])
            video = int(rng.integers(len(self)))
        raise TooManyBadClips(f"item {index} and {MAX_REPLACEMENTS} replacement clips drawn for it cannot be read "
                              f"(last: {skipped[-1][1]})")


class EvalDataset(VideoDataset):
    """Every view of every clip that a multi-clip temporal transform cuts from every video, one per item.

    Items are (float32 C x T x H x W, int label, int video index). With
    TemporalEvenCrop this is kenshohara's per-epoch validation; with
    SlidingWindow his inference (average the clip scores per video with
    core.metrics.video_scores); with EvenlySpacedClips and a spatial
    transform with views (ThreeCrop) MMAction2's multi-view testing.
    `clips_per_video[v]` counts the clips of video v; each clip gives
    `spatial.n_views` consecutive items (`view(index)`), read once.
    """

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        # Clips are fixed: computed once, with the rng of the video.
        self.clips = [(video_index, clip)
                      for video_index in range(len(self.video_ids))
                      for clip in self.temporal(self.frame_indices(video_index), self.rng(video_index))]
        self.clips_per_video = np.bincount([v for v, _ in self.clips], minlength=len(self.video_ids))
        self._last_views = (None, None)  # (clip number, its views): the next items of a clip reuse its frames

    def __len__(self):
        return len(self.clips) * self.spatial.n_views

    def view(self, index):
        """(video index, frame indices, view number) of item `index`."""
        clip, view = divmod(index, self.spatial.n_views)
        return (*self.clips[clip], view)

    def __getitem__(self, index):
        video_index, frame_indices, view = self.view(index)
        clip = index // self.spatial.n_views
        if self._last_views[0] != clip:
            self._last_views = (clip, self.spatial.split(self.read_clip(video_index, frame_indices,
                                                                        self.rng(clip))))
        return self._last_views[1][view], self.labels[video_index], video_index

    def load(self, index, skipped):
        """Item `index`, or None when its clip cannot be read (appended to `skipped` as (video index, problem)):
        evaluation leaves that video out rather than score it on a replacement."""
        try:
            return self[index]
        except FrameError as error:
            skipped.append((self.view(index)[0], str(error)))
            return None


def _dataset(cls, config, subset, train, inference):
    frames_root = config.flow_path if config.modality == "flow" else config.video_path
    cache = FrameCache(config.frame_cache) if config.frame_cache and config.frame_source == "frames" else None
    dataset = cls(config.annotation_path, frames_root, subset,
                  build_spatial(config, train, inference), build_temporal(config, train, inference),
                  modality=config.modality, flow_template=config.flow_template, seed=config.manual_seed,
                  frame_source=config.frame_source, frame_cache=cache)
    if config.frame_source == "video" or cache is not None:
        # A JPEG decoding option; cached frames are full-size (read back faster than a reduced decode).
        dataset.spatial.reduced_decoding = False
    if config.modality == "flow":
        _check_flow_layout(dataset)
    return dataset


def _check_flow_layout(dataset):
    """Flow of the MindSpore zoo read as ours would be one frame off: refuse it (the first video tells)."""
    try:
        check_flow_alignment(dataset.video_dirs[0], dataset.flow_template, dataset.frame_indices(0)[-1])
    except FrameError as e:
        raise AnnotationError(str(e)) from None


def training_set(config):
    """Training clips: random temporal and spatial crops (kenshohara's get_train_utils)."""
    return _dataset(VideoDataset, config, "training", train=True, inference=False)


def validation_set(config):
    """`n_val_samples` even clips per validation video (kenshohara's get_val_utils)."""
    return _dataset(EvalDataset, config, "validation", train=False, inference=False)


def evaluation_set(config, subset=None):
    """Sliding-window clips (or `n_inference_clips` evenly spaced ones) of every video of `subset` (default
    `inference_subset`), centre-cropped, whole or three views each (`inference_crop`)."""
    return _dataset(EvalDataset, config, subset or config.inference_subset, train=False, inference=True)
