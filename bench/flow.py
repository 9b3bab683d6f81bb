"""Optical flow: ours (core.flow.compute_dataset, all cores) vs the MindSpore zoo's serial route.

    python -m bench.flow [--size 112] [--frames 40] [--workers 2] [--repeats 3]

The zoo (research/cv/I3D, convert_rgb_to_flow.py) computes TV-L1 in one
process, pair after pair, with cv2.optflow.DualTVL1OpticalFlow_create and
writes one JPEG per component. The baseline here is that loop, with our
quantisation (clip to [-20, 20], map to 0..255, round) and JPEG quality, so
its files must equal ours byte for byte; the benchmark asserts it. Ours runs
compute_dataset with --workers processes of one OpenCV thread each.

OpenCV parallelises parts of TV-L1 itself, so the zoo's loop already uses
several cores; it is also timed with one OpenCV thread. "Scales with the
cores" is read from ours with 1 worker vs --workers workers (one core vs
all). Farneback and DIS run our route only, for scale.

Input: the real UCF-101 clip at --size short side, its first --frames frames,
in max(2, --workers) video folders (so every worker has work).
"""
import argparse
import os
import shutil
import tempfile

import cv2

from bench.common import CRICKET_GIF, median_rate, timed, write_result
from core.flow import compute_dataset, quantize
from core.video import iter_frames, resize_short_side

DATA = os.path.join(os.path.dirname(os.path.abspath(__file__)), "data", "flow")


def make_frames(root, size, n_frames, n_videos):
    frames_root = os.path.join(root, f"frames_{size}_{n_frames}_{n_videos}")
    if not os.path.isdir(frames_root):
        frames = [resize_short_side(f, size) for _, f in zip(range(n_frames), iter_frames(CRICKET_GIF))]
        for v in range(n_videos):
            video_dir = os.path.join(frames_root, "CricketShot", f"v_CricketShot_g04_c{v + 1:02d}")
            os.makedirs(video_dir)
            for i, frame in enumerate(frames, 1):
                cv2.imwrite(os.path.join(video_dir, f"image_{i:05d}.jpg"), frame[..., ::-1],
                            [cv2.IMWRITE_JPEG_QUALITY, 95])
    return frames_root


def zoo_serial(src, dst, opencv_threads, bound=20.0, quality=95):
    """One process, pair after pair: TV-L1 on grayscale frames, two JPEGs per pair."""
    cv2.setNumThreads(opencv_threads)
    tvl1 = cv2.optflow.DualTVL1OpticalFlow_create()
    for class_name in sorted(os.listdir(src)):
        for video in sorted(os.listdir(os.path.join(src, class_name))):
            video_dir, out_dir = os.path.join(src, class_name, video), os.path.join(dst, class_name, video)
            os.makedirs(out_dir)
            names = sorted(n for n in os.listdir(video_dir) if n.startswith("image_"))
            prev = cv2.cvtColor(cv2.imread(os.path.join(video_dir, names[0])), cv2.COLOR_BGR2GRAY)
            for k, name in enumerate(names[1:], 1):
                gray = cv2.cvtColor(cv2.imread(os.path.join(video_dir, name)), cv2.COLOR_BGR2GRAY)
                flow = quantize(tvl1.calc(prev, gray, None), bound)
                for axis, channel in (("x", 0), ("y", 1)):
                    cv2.imwrite(os.path.join(out_dir, f"image_{k:05d}{axis}.jpg"), flow[:, :, channel],
                                [cv2.IMWRITE_JPEG_QUALITY, quality])
                prev = gray


def files(root):
    found = {}
    for folder, _, names in os.walk(root):
        for name in names:
            if name.endswith(".jpg"):
                with open(os.path.join(folder, name), "rb") as f:
                    found[os.path.relpath(os.path.join(folder, name), root)] = f.read()
    return found


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m bench.flow", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size", type=int, default=112, help="short side of the frames")
    parser.add_argument("--frames", type=int, default=25, help="frames per video (two videos)")
    parser.add_argument("--workers", type=int, default=os.cpu_count(), help="our worker processes")
    parser.add_argument("--repeats", type=int, default=3, help="runs of each route; the median is reported")
    args = parser.parse_args(argv)
    src = make_frames(DATA, args.size, args.frames, max(2, args.workers))
    opencv_threads = cv2.getNumThreads()
    routes = {"ours_tvl1": lambda dst: compute_dataset(src, dst, "tvl1", args.workers, args.size, progress=False),
              "ours_tvl1_1_worker": lambda dst: compute_dataset(src, dst, "tvl1", 1, args.size, progress=False),
              "zoo_serial_tvl1": lambda dst: zoo_serial(src, dst, opencv_threads),
              "zoo_serial_tvl1_1_thread": lambda dst: zoo_serial(src, dst, 1)}
    seconds = {name: [] for name in routes}
    outputs = {}
    for _ in range(args.repeats):
        for name, route in routes.items():
            dst = tempfile.mkdtemp()
            seconds[name].append(timed(lambda: route(dst))[0])
            outputs[name] = files(dst)
            shutil.rmtree(dst)
    cv2.setNumThreads(opencv_threads)
    ours = outputs["ours_tvl1"]
    for name, other in outputs.items():
        assert ours.keys() == other.keys(), f"{name}: different files: {sorted(ours.keys() ^ other.keys())[:5]}"
        differing = sorted(f for f in ours if ours[f] != other[f])
        assert not differing, f"{name}: {len(differing)} of {len(ours)} files differ, e.g. {differing[:3]}"
    n_pairs = len(ours) // 2
    for method in ("farneback", "dis"):
        name = f"ours_{method}"
        seconds[name] = []
        for _ in range(args.repeats):
            with tempfile.TemporaryDirectory() as dst:
                seconds[name].append(timed(lambda: compute_dataset(src, dst, method, args.workers, args.size,
                                                                   progress=False))[0])
    rates = {name: median_rate(s, n_pairs) for name, s in seconds.items()}
    median = {name: rate["median"] for name, rate in rates.items()}
    write_result("flow", {
        "frame_size": f"{args.size} short side", "pairs": n_pairs, "workers": args.workers, "repeats": args.repeats,
        "baseline_opencv_threads": opencv_threads, "identical_files": True, "files_compared": len(ours),
        "pairs_per_second": rates,
        "ratio_ours_over_zoo_tvl1": median["ours_tvl1"] / median["zoo_serial_tvl1"],
        "scaling_ours_workers_over_1_worker": median["ours_tvl1"] / median["ours_tvl1_1_worker"],
        "scaling_zoo_opencv_threads_over_1_thread": median["zoo_serial_tvl1"] / median["zoo_serial_tvl1_1_thread"]})


if __name__ == "__main__":
    main()
