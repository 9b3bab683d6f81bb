"""Optical flow for the flow stream of two-stream and I3D models.

    python -m core.flow SRC DST [--method tvl1|farneback|dis] [--workers N] [--size N]
                                [--template 'image_{:05d}{}.jpg'] [--bound 20] [--shard K --num-shards N]

SRC holds one folder per class; in it each video is either a folder of RGB
frames (<class>/<video_id>/image_00001.jpg, as core.extract_frames writes
them) or a video file that PyAV reads (<class>/<video_id>.avi, .mp4, ...).
DST gets <class>/<video_id>/ with two single-channel JPEGs per frame pair,
named by --template: 'image_{:05d}{}.jpg' -> image_00001x.jpg and
image_00001y.jpg (MindSpore model zoo I3D), or 'flow_{}_{:05d}.jpg' ->
flow_x_00001.jpg (dense_flow / MMAction).

Frames are turned grayscale after the same short-side resize as the RGB
frames: by default frame folders keep their size (core.extract_frames has
resized them already) and video files get a short side of 240, as
core.extract_frames gives by default; --size N resizes both, --size 0 keeps
both. Each flow component is clipped to [-bound, bound] and mapped linearly to
0..255 (see `quantize`); at load time a value v means (v / 255 * 2 - 1) * bound.

N frames give N - 1 pairs: flow k goes from frame k to frame k + 1, so the
annotation segment [1, N + 1] of the RGB frames holds pairs 1 .. N - 1. When a
clip asks for more pairs than a video has, the dataset loader loop-pads them
as it does RGB frames: pairs 1, 2, 3 padded to 7 are 1, 2, 3, 1, 2, 3, 1.
The model zoo's convert_rgb_to_flow.py instead writes N files, its file k
holding the flow from frame k - 1 to k and file 1 frame 1 against itself
(zero motion): --template ms-zoo writes that layout (image_00001x.jpg ...,
one file more per video) and the config's `flow_template: ms-zoo` reads it
aligned (pair k from file k + 1); read with the plain template, such a folder
is refused, since every clip would be one frame off its RGB frames.

TV-L1 (cv2.optflow.DualTVL1OpticalFlow_create) is the reference method; its
options default to OpenCV's defaults, which is what the model zoo script
uses. Farneback and DIS (preset medium) are much faster alternatives.

Videos run in parallel worker processes. A `.done` file written last in each
output folder makes a run resumable: done videos are skipped, half-written
ones are redone, and so are videos whose frames changed after their flow was
made (the marker records the frames' count and time). Frame folders are read
only when core.extract_frames has finished them (its own `.done` marker), so
flow can run while extraction does; a tree where no folder has a marker was
made by another tool and is read as it is (--no-markers reads every folder).
A video that fails is reported with the reason and skipped; the exit status
is 1 when any failed.
"""
import argparse
import glob
import itertools
import os
import shutil
import sys
import time
import multiprocessing

import cv2
import numpy as np
from tqdm import tqdm

from core.config import SCHEMA
from core.extract_frames import MARKER as FRAMES_MARKER
from core.extract_frames import SIZE as VIDEO_SIZE
from core.extract_frames import count_frames, is_finished, unmarked_tree
from core.frames import FLOW_TEMPLATE, NAMED_FLOW_TEMPLATES, RGB_TEMPLATE, flow_frame_name, read_rgb_frames
from core.names import printable
from core.video import VideoError, iter_frames, resize_short_side

METHODS = SCHEMA["flow_method"].choices  # the config key that names the method of a flow model's frames
DONE_MARKER = ".done"

# Our keyword -> (keyword of cv2.optflow.DualTVL1OpticalFlow_create, OpenCV's default, meaning).
TVL1_PARAMS = {
    "tau": ("tau", 0.25, "time step of the numerical scheme"),
    "lambda_": ("lambda_", 0.15, "weight of the data term (smaller: smoother flow)"),
    "theta": ("theta", 0.3, "tightness of the coupling between the two sub-problems"),
    "nscales": ("nscales", 5, "pyramid levels"),
    "warps": ("warps", 5, "warpings per pyramid level"),
    "epsilon": ("epsilon", 0.01, "stopping threshold of the iterations"),
    "inner_iterations": ("innnerIterations", 30, "inner iterations per warping"),  # sic: OpenCV's spelling
    "outer_iterations": ("outerIterations", 10, "outer iterations per warping"),
    "scale_step": ("scaleStep", 0.8, "downscale factor between pyramid levels"),
    "gamma": ("gamma", 0.0, "weight of the illumination-variation term"),
    "median_filtering": ("medianFiltering", 5, "median filter size applied to the flow"),
    "use_initial_flow": ("useInitialFlow", False, "start each pair from the previous pair's flow"),
}

# Common settings (as in OpenCV's samples and dense_flow).
FARNEBACK_PARAMS = dict(pyr_scale=0.5, levels=3, winsize=15, iterations=3, poly_n=5, poly_sigma=1.2, flags=0)


def _check_bound(bound):
    if not bound > 0:
        raise ValueError(f"bound must be positive, got {bound}")


def quantize(flow, bound=20.0):
    """Float flow -> uint8: clip to [-bound, bound], map linearly to 0..255."""
    _check_bound(bound)
    scaled = (np.clip(flow, -bound, bound) + bound) * (255.0 / (2 * bound))
    return np.round(scaled).astype(np.uint8)


def dequantize(image, bound=20.0):
    """uint8 flow image -> float32 flow in [-bound, bound]."""
    return (image.astype(np.float32) * (2.0 / 255.0) - 1.0) * bound


def flow_estimator(method, **params):
    """A function (prev_gray, next_gray) -> H x W x 2 float32 flow (x, y)."""
    if method == "tvl1":
        unknown = set(params) - set(TVL1_PARAMS)
        if unknown:
            raise ValueError(f"unknown TV-L1 parameters {sorted(unknown)}; known: {sorted(TVL1_PARAMS)}")
        settings = {name: params.get(name, default) for name, (_, default, _) in TVL1_PARAMS.items()}
        tvl1 = cv2.optflow.DualTVL1OpticalFlow_create(
            **{TVL1_PARAMS[name][0]: value for name, value in settings.items()})
        if not settings["use_initial_flow"]:
            return lambda prev, nxt: tvl1.calc(prev, nxt, None)
        last = [None]

        def warm_started(prev, nxt):
            if last[0] is None or last[0].shape[:2] != prev.shape:
                last[0] = np.zeros(prev.shape + (2,), np.float32)
            last[0] = tvl1.calc(prev, nxt, last[0].copy())
            return last[0]
        return warm_started
    if params:
        raise ValueError(f"method {method!r} takes no parameters, got {sorted(params)}")
    if method == "farneback":
        return lambda prev, nxt: cv2.calcOpticalFlowFarneback(prev, nxt, None, **FARNEBACK_PARAMS)
    if method == "dis":
        dis = cv2.DISOpticalFlow_create(cv2.DISOPTICAL_FLOW_PRESET_MEDIUM)
        # DIS asserts contiguous images; crops and views are not.
        return lambda prev, nxt: dis.calc(np.ascontiguousarray(prev), np.ascontiguousarray(nxt), None)
    raise ValueError(f"unknown flow method {method!r}; choose from {', '.join(METHODS)}")


def flow_pair(prev_gray, next_gray, method="tvl1", **params):
    """Flow from one grayscale uint8 frame to the next: H x W x 2 float32 (x, y)."""
    return flow_estimator(method, **params)(prev_gray, next_gray)


def list_videos(src):
    """Sorted 'class/video' names under src: frame folders and video files."""
    videos = []
    for class_name in sorted(os.listdir(src)):
        class_dir = os.path.join(src, class_name)
        if os.path.isdir(class_dir) and not class_name.startswith("."):
            videos += [f"{class_name}/{entry}" for entry in os.listdir(class_dir) if not entry.startswith(".")]
    return sorted(videos)


def output_dir(src, dst, video):
    """DST/<class>/<video_id>; a video file's extension is not part of its id."""
    if os.path.isfile(os.path.join(src, video)):
        video = os.path.splitext(video)[0]
    return os.path.join(dst, video)


def gray_frame(rgb, size=0):
    """The grayscale uint8 frame the flow is computed on: short side resized to `size` (0: kept)."""
    return cv2.cvtColor(resize_short_side(rgb, size), cv2.COLOR_RGB2GRAY)


class FlowStream:
    """Called with one grayscale frame after another, returns the quantised flow (H x W x 2 uint8, x and y)
    from the previous frame to this one (None for the first): what compute_video writes as two JPEGs per
    pair, and what predict computes in memory from decoded frames (core.predict)."""

    def __init__(self, estimate, bound=20.0):
        _check_bound(bound)
        self.estimate, self.bound, self.previous = estimate, bound, None

    def __call__(self, gray):
        previous, self.previous = self.previous, gray
        return None if previous is None else quantize(self.estimate(previous, gray), self.bound)


def flow_images(gray_frames, estimate, bound=20.0):
    """The FlowStream images of consecutive `gray_frames`, one per pair."""
    stream = FlowStream(estimate, bound)
    return (image for image in map(stream, gray_frames) if image is not None)


def iter_gray_frames(path, size=None):
    """Grayscale uint8 frames of a frame folder or a video file, short side resized to `size` (0: keep).

    size None keeps a frame folder's size and resizes a video file's frames as core.extract_frames does.
    """
    if os.path.isdir(path):
        n_frames = len(glob.glob(os.path.join(path, RGB_TEMPLATE.replace("{:05d}", "[0-9]" * 5))))
        rgb_frames = (read_rgb_frames(path, [index])[0] for index in range(1, n_frames + 1))
        size = 0 if size is None else size
    else:
        rgb_frames = iter_frames(path)
        size = VIDEO_SIZE if size is None else size
    for rgb in rgb_frames:
        yield gray_frame(rgb, size)


def compute_video(src_path, out_dir, method="tvl1", size=None, template=FLOW_TEMPLATE,
                  bound=20.0, quality=95, params=None):
    """Write the quantised flow of one video into out_dir; returns the number of pairs."""
    signature = source_signature(src_path)  # before reading: frames changed meanwhile make the flow stale
    if os.path.exists(out_dir):
        shutil.rmtree(out_dir)  # half-written by an interrupted run
    os.makedirs(out_dir)
    estimate = flow_estimator(method, **(params or {}))
    jpeg = [cv2.IMWRITE_JPEG_QUALITY, quality]
    gray_frames, first_pair = iter_gray_frames(src_path, size), 1
    if template in NAMED_FLOW_TEMPLATES:  # the zoo's first file (pair 0): frame 1 against itself
        first = next(gray_frames, None)
        gray_frames, first_pair = itertools.chain([first, first] if first is not None else [], gray_frames), 0
    pairs = 0
    for pairs, image in enumerate(flow_images(gray_frames, estimate, bound), first_pair):
        for axis, channel in (("x", 0), ("y", 1)):
            name = os.path.join(out_dir, flow_frame_name(template, pairs, axis))
            if not cv2.imwrite(name, image[:, :, channel], jpeg):
                raise OSError(f"{name}: cannot write the JPEG")
    if pairs <= 0:
        raise VideoError(src_path, "fewer than 2 frames, no flow")
    with open(os.path.join(out_dir, DONE_MARKER), "w") as f:
        f.write(f"{pairs}\n{signature}\n")
    return pairs


def source_signature(src_path):
    """What a video's flow is made from: a frame folder's frame count and the time of its .done marker (else
    of the folder, which changes as frames come and go), or a video file's size and time."""
    if os.path.isdir(src_path):
        marker = os.path.join(src_path, FRAMES_MARKER)
        stamp = os.stat(marker if os.path.exists(marker) else src_path).st_mtime_ns
        return f"frames {count_frames(src_path)} {stamp}"
    status = os.stat(src_path)
    return f"file {status.st_size} {status.st_mtime_ns}"


def is_done(out_dir, src_path):
    """True when out_dir holds finished flow of src_path as it is now: its frames have not changed since."""
    try:
        with open(os.path.join(out_dir, DONE_MARKER)) as f:
            lines = f.read().splitlines()
        if len(lines) == 1:  # written before markers recorded their source: trust it while the count fits
            return not os.path.isdir(src_path) or int(lines[0]) == count_frames(src_path) - 1
        return lines[1] == source_signature(src_path)
    except (OSError, ValueError):
        return False


def _init_worker():
    cv2.setNumThreads(1)  # parallelism comes from the worker processes


def _run_one(job):
    video, src_path, out_dir, options = job
    try:
        return video, compute_video(src_path, out_dir, **options), None
    except Exception as e:  # one bad video must not stop the dataset
        shutil.rmtree(out_dir, ignore_errors=True)
        return video, 0, f"{type(e).__name__}: {e}"


def compute_dataset(src, dst, method="tvl1", workers=1, size=None, template=FLOW_TEMPLATE,
                    bound=20.0, quality=95, shard=0, num_shards=1, params=None, progress=True, markers=True):
    """Flow for every video of this shard of src; returns a summary dict.

    With `markers`, a frame folder is read only once core.extract_frames finished it (its .done marker),
    unless no folder has a marker (a tree made by another tool); flow made from frames that changed
    since (re-extracted, completed) is redone.

    Video k of the sorted list belongs to shard k % num_shards. The summary
    has 'videos' (in this shard), 'computed', 'skipped' (already done),
    'failed' ([(video, reason)]), 'pairs' (written now) and 'seconds'.
    Bad options raise ValueError before any video is read.
    """
    if workers < 1:
        raise ValueError(f"workers must be at least 1, got {workers}")
    if num_shards < 1:
        raise ValueError(f"the number of shards must be at least 1, got {num_shards}")
    if not 0 <= shard < num_shards:
        raise ValueError(f"shard {shard} is not in 0..{num_shards - 1}")
    if not 1 <= quality <= 100:
        raise ValueError(f"quality must be between 1 and 100, got {quality}")
    _check_bound(bound)
    flow_estimator(method, **(params or {}))
    flow_frame_name(template, 1, "x")
    start = time.time()
    videos = list_videos(src)[shard::num_shards]
    options = dict(method=method, size=size, template=template, bound=bound, quality=quality, params=params)
    folders = [os.path.join(src, v) for v in videos if os.path.isdir(os.path.join(src, v))]
    if markers and folders and unmarked_tree(folders):
        print(f"{src}: no frame folder has a {FRAMES_MARKER} marker: frames made by another tool, read as they are",
              file=sys.stderr)
        markers = False
    unfinished = [v for v in videos if markers and os.path.join(src, v) in folders
                  and not is_finished(os.path.join(src, v))]
    jobs = [(v, os.path.join(src, v), output_dir(src, dst, v), options) for v in videos
            if v not in unfinished and not is_done(output_dir(src, dst, v), os.path.join(src, v))]
    summary = dict(videos=len(videos), computed=0, skipped=len(videos) - len(jobs) - len(unfinished),
                   failed=[(v, f"frames not finished (no {FRAMES_MARKER} marker with their count): extraction "
                               "interrupted or still running; rerun after it, or --no-markers") for v in unfinished],
                   pairs=0)
    # Not fork: a caller with threads (MindSpore, torch, OpenCV's pool) can leave a forked child deadlocked.
    context = multiprocessing.get_context("forkserver")
    with context.Pool(workers, initializer=_init_worker) as pool:
        for video, pairs, error in tqdm(pool.imap_unordered(_run_one, jobs), total=len(jobs),
                                        desc=f"flow ({method})", unit="video", disable=not progress):
            if error:
                tqdm.write(f"FAILED {printable(video)}: {printable(error)}", file=sys.stderr)
                summary["failed"].append((video, error))
            else:
                summary["computed"] += 1
                summary["pairs"] += pairs
    summary["failed"].sort()
    summary["seconds"] = time.time() - start
    return summary


class _HelpFormatter(argparse.RawDescriptionHelpFormatter, argparse.ArgumentDefaultsHelpFormatter):
    """Docstring paragraphs as written; defaults shown, except None, which the option's help explains."""

    def _get_help_string(self, action):
        return action.help if action.default is None else super()._get_help_string(action)


def main(argv=None):
    title, synopsis, details = __doc__.split("\n\n", 2)
    parser = argparse.ArgumentParser(prog="python -m core.flow", description=f"{title}\n\n{synopsis}",
                                     epilog=details, formatter_class=_HelpFormatter)
    parser.add_argument("src", help="frame root (<class>/<video_id>/image_00001.jpg) or video root "
                                    "(<class>/<video file>)")
    parser.add_argument("dst", help="output root: <class>/<video_id>/<template files>")
    parser.add_argument("--method", choices=METHODS, default="tvl1", help="flow algorithm")
    parser.add_argument("--workers", type=int, default=os.cpu_count(), help="worker processes")
    parser.add_argument("--size", type=int, default=None,
                        help=f"short side of the frames before flow; 0 keeps the size (default: frame folders keep "
                             f"theirs, video files get {VIDEO_SIZE})")
    parser.add_argument("--template", default=FLOW_TEMPLATE,
                        help="file names: '{:05d}' is the pair index (from 1), '{}' the axis x or y; 'ms-zoo': "
                             "the MindSpore zoo's layout (image_{:05d}{}.jpg, file k = frame k - 1 -> k, file 1 "
                             "zero motion)")
    parser.add_argument("--bound", type=float, default=20.0, help="flow is clipped to [-bound, bound] pixels")
    parser.add_argument("--quality", type=int, default=95, help="JPEG quality")
    parser.add_argument("--shard", type=int, default=0, help="this shard's index")
    parser.add_argument("--num-shards", type=int, default=1, help="video k of the sorted list goes to shard k %% n")
    parser.add_argument("--no-markers", dest="markers", action="store_false",
                        help=f"read frame folders without the {FRAMES_MARKER} marker of core.extract_frames "
                             "(by default they are left for a later run, unless no folder has one)")
    tvl1 = parser.add_argument_group("TV-L1 options (OpenCV's defaults)")
    for name, (_, default, meaning) in TVL1_PARAMS.items():
        flag = "--" + name.strip("_").replace("_", "-")
        if isinstance(default, bool):
            tvl1.add_argument(flag, dest=name, action="store_true", help=meaning)
        else:
            tvl1.add_argument(flag, dest=name, type=type(default), default=default, metavar="X", help=meaning)
    args = parser.parse_args(argv)
    params = {name: getattr(args, name) for name in TVL1_PARAMS} if args.method == "tvl1" else None
    if not os.path.isdir(args.src):
        parser.error(f"{args.src}: not a directory")
    try:
        summary = compute_dataset(args.src, args.dst, method=args.method, workers=args.workers, size=args.size,
                                  template=args.template, bound=args.bound, quality=args.quality,
                                  shard=args.shard, num_shards=args.num_shards, params=params, markers=args.markers)
    except ValueError as error:  # the options, checked before any video is read
        parser.error(str(error))
    print(f"{summary['videos']} videos in shard {args.shard}/{args.num_shards}: {summary['computed']} computed "
          f"({summary['pairs']} pairs), {summary['skipped']} already done, {len(summary['failed'])} failed, "
          f"{summary['seconds']:.1f} s")
    for video, error in summary["failed"]:
        print(f"  failed: {printable(video)}: {printable(error)}")
    return 1 if summary["failed"] else 0


if __name__ == "__main__":
    sys.exit(main())
