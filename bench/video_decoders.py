"""Decoding training clips from video files: PyAV (what `frame_source: video` uses) against decord.

    python -m bench.video_decoders [--videos 8] [--epochs 4] [--repeats 5]

The .mp4 files of bench.clip_loading (the real UCF-101 clip at 320 x 240, 79 frames, libx264 qp 18), with a
keyframe every 16 frames and with x264's default interval (250: one keyframe). Each pass decodes, for every
video, the 16 consecutive frames of a random temporal crop (seeded, the same windows for both) as
T x H x W x 3 RGB uint8; no transforms, which are the same whatever decodes.

- pyav: core.video_clips.VideoIndex.read, as the dataset runs it: the file's frame times read once per video,
  then per clip: open, seek to the keyframe before the clip, decode with FFmpeg's AUTO threading up to its
  last frame, convert to RGB.
- decord: decord.VideoReader (one per video, opened once and kept, its best case), get_batch of the clip's
  frame numbers, with decord's default threading.

Reported: clips per wall-clock second and per CPU second of the process (all its threads), medians of the
repeats, and the mean / max difference of the two decoders' pixels. decord is not a dependency of the
project (bash bench/setup.sh installs it); without it only PyAV is measured.
"""
import argparse
import os
import time

import numpy as np

from bench.clip_loading import DATA, make_video_files
from bench.common import write_result
from core.video_clips import VideoIndex

DURATION = 16


def clip_windows(n_frames, n_videos, epochs, seed=0):
    """[(video, 1-based frame numbers)] of `epochs` passes: a random 16-frame window per video per pass."""
    rng = np.random.default_rng(seed)
    return [(video, list(range(begin, begin + DURATION)))
            for _ in range(epochs) for video in range(n_videos)
            for begin in [int(rng.integers(1, n_frames - DURATION + 2))]]


def pyav_route(paths):
    indices = [VideoIndex(path) for path in paths]
    return lambda video, frames: indices[video].read(frames)


def decord_route(paths):
    import decord
    readers = [decord.VideoReader(path, ctx=decord.cpu(0)) for path in paths]
    return lambda video, frames: readers[video].get_batch([f - 1 for f in frames]).asnumpy()


def measure(route, windows):
    wall, cpu = time.perf_counter(), time.process_time()
    for video, frames in windows:
        route(video, frames)
    return time.perf_counter() - wall, time.process_time() - cpu


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m bench.video_decoders", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--videos", type=int, default=8)
    parser.add_argument("--epochs", type=int, default=4, help="passes over the videos per timed run")
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args(argv)
    try:
        import decord  # noqa: F401
        builders = {"pyav": pyav_route, "decord": decord_route}
    except ImportError:
        print("decord is not installed (bash bench/setup.sh): measuring PyAV only")
        builders = {"pyav": pyav_route}
    result = {"clip": [DURATION, 240, 320, 3], "videos": args.videos, "epochs": args.epochs,
              "repeats": args.repeats}
    for interval in (16, 250):
        root = os.path.join(make_video_files(DATA, args.videos, interval), "CricketShot")
        paths = [os.path.join(root, f"v_{v:03d}.mp4") for v in range(args.videos)]
        routes = {name: build(paths) for name, build in builders.items()}
        windows = clip_windows(len(VideoIndex(paths[0])), args.videos, args.epochs)
        clips = {name: route(*windows[0]) for name, route in routes.items()}  # also the warm-up
        runs = {name: [] for name in routes}
        for _ in range(args.repeats):
            for name, route in routes.items():  # interleaved
                runs[name].append(measure(route, windows))
        entry = {name: {"clips_per_second": float(np.median([len(windows) / wall for wall, _ in values])),
                        "clips_per_cpu_second": float(np.median([len(windows) / cpu for _, cpu in values]))}
                 for name, values in runs.items()}
        if "decord" in clips:
            difference = np.abs(clips["pyav"].astype(np.int16) - clips["decord"].astype(np.int16))
            entry["pixels_decord_vs_pyav"] = {"mean_abs": float(difference.mean()), "max_abs": int(difference.max())}
            entry["ratio_decord_over_pyav"] = entry["decord"]["clips_per_second"] / entry["pyav"]["clips_per_second"]
            entry["cpu_ratio_decord_over_pyav"] = (entry["decord"]["clips_per_cpu_second"]
                                                   / entry["pyav"]["clips_per_cpu_second"])
        result[f"keyframe_every_{interval}"] = entry
    write_result("video_decoders", result)


if __name__ == "__main__":
    main()
