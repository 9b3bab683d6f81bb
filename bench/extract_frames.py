"""Frame extraction: ours (core.extract_frames) vs the reference's one ffmpeg process per video.

    python -m bench.extract_frames [--workers 2] [--size 112] [--repeats 3]

The reference (kenshohara's util_scripts/generate_video_jpgs.py) runs, per video,
`ffmpeg -i VIDEO -vf scale=-1:SIZE -threads 1 DST/image_%05d.jpg` in a pool of
jobs; here a thread pool of --workers runs those ffmpeg processes (its extra
ffprobe call per video is left out, which only favours the baseline). Ours is
core.extract_frames.extract_dataset with the same number of worker processes
and the same short side. Both must write the same number of frames per video.

Datasets: the synthetic set (core.synthetic, 128 px, made once under
bench/data) and the real UCF-101 clip, copied 32 times.
"""
import argparse
import os
import shutil
import subprocess
import tempfile
from concurrent.futures import ThreadPoolExecutor

from bench.common import CRICKET_GIF, median_rate, synthetic_dataset, timed, write_result
from core.extract_frames import count_frames, extract_dataset, list_videos

DATA = os.path.join(os.path.dirname(os.path.abspath(__file__)), "data")


def ffmpeg_video(video_path, frames_dir, size):
    """The reference's command for one video (a portrait video scales its width instead)."""
    os.makedirs(frames_dir)
    command = ["ffmpeg", "-nostdin", "-loglevel", "error", "-i", video_path, "-vf", f"scale=-1:{size}",
               "-threads", "1", os.path.join(frames_dir, "image_%05d.jpg")]
    subprocess.run(command, check=True)


def ffmpeg_dataset(src, dst, size, workers):
    videos, _ = list_videos(src)
    jobs = [(v.path, os.path.join(dst, v.label, v.video_id), size) for v in videos]
    with ThreadPoolExecutor(workers) as pool:
        list(pool.map(lambda job: ffmpeg_video(*job), jobs))


def frame_counts(dst):
    return {f"{label}/{video}": count_frames(os.path.join(dst, label, video))
            for label in sorted(os.listdir(dst)) for video in sorted(os.listdir(os.path.join(dst, label)))}


def gif_dataset(root, copies=32):
    """The real clip copied `copies` times into one class folder.

    32 copies (2528 frames): with 8 the whole job took 0.5 s and the start of our two
    spawned workers (Python importing PyAV and OpenCV) was most of it, which a real
    dataset of thousands of videos does not see (8 copies: 0.86x, 32 copies: 1.8x)."""
    src = os.path.join(root, "videos")
    if not os.path.isdir(src):
        os.makedirs(os.path.join(src, "CricketShot"))
        for i in range(copies):
            shutil.copy(CRICKET_GIF, os.path.join(src, "CricketShot", f"v_CricketShot_g04_c{i + 1:02d}.gif"))
    return src


def compare(src, size, workers, repeats):
    routes = {"ours": lambda dst: extract_dataset(src, dst, size=size, workers=workers),
              "ffmpeg": lambda dst: ffmpeg_dataset(src, dst, size, workers)}
    seconds = {name: [] for name in routes}
    counts = {}
    for _ in range(repeats):
        for name, route in routes.items():  # interleaved, so load changes hit both alike
            with tempfile.TemporaryDirectory() as dst:
                elapsed, _ = timed(lambda: route(dst))
                seconds[name].append(elapsed)
                counts[name] = frame_counts(dst)
    assert counts["ours"] == counts["ffmpeg"], f"frame counts differ: ours {counts['ours']}, ffmpeg {counts['ffmpeg']}"
    n_frames = sum(counts["ours"].values())
    rates = {name: median_rate(s, n_frames) for name, s in seconds.items()}
    return {"videos": len(counts["ours"]), "frames": n_frames, "frame_counts_equal": True,
            "frames_per_second": rates, "ratio_ours_over_ffmpeg": rates["ours"]["median"] / rates["ffmpeg"]["median"]}


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m bench.extract_frames", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--workers", type=int, default=os.cpu_count(), help="parallel workers for both routes")
    parser.add_argument("--size", type=int, default=112, help="short side of the written frames")
    parser.add_argument("--repeats", type=int, default=3, help="runs of each route; the median is reported")
    args = parser.parse_args(argv)
    datasets = {"synthetic": synthetic_dataset(os.path.join(DATA, "synthetic")),
                "cricket_gif_x32": gif_dataset(os.path.join(DATA, "cricket32"))}
    results = {name: compare(src, args.size, args.workers, args.repeats) for name, src in datasets.items()}
    write_result("extract_frames", {"workers": args.workers, "size": args.size, "repeats": args.repeats,
                                    "goal": "ours at least as fast (ratio >= 1)", "datasets": results})


if __name__ == "__main__":
    main()
