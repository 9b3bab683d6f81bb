"""Extract the frames of a video dataset as JPEG folders, kenshohara's layout.

    python -m core.extract_frames SRC DST [--size 240] [--upscale] [--fps F] [--quality 95] [--workers N]
                                          [--layout auto|classes|splits|csv] [--csv FILE]

writes DST/<class>/<video_id>/image_00001.jpg, image_00002.jpg, ... where video_id is the video's
file name without its extension. Source layouts:

  classes  SRC/<class>/<video>.avi                      UCF-101, HMDB-51, Kinetics in class folders
  splits   SRC/<split>/<class>/<video>.{mkv,mp4,avi}    e.g. SRC/train/Fight/..., SRC/val/NonFight/...
  csv      SRC/<video file> listed in a CSV (--csv):    Kinetics columns label,youtube_id,time_start,
           time_end,split (file <youtube_id>_<start:06d>_<end:06d>.<ext>), or columns video,label
           (ActivityNet and others); files are looked up in SRC and SRC/<label>/, with any video
           extension; rows without a label go to the class "test" as in kenshohara's scripts.
  auto     csv if --csv is given, splits if SRC holds split folders (train, val, test, ...) of
           class folders, classes otherwise.

With split folders the frames still go to DST/<class>/<video_id>, because annotation JSON keys are
video ids. A video id found in more than one split is renamed to <split>_<video_id> in every split
(`python -m core.annotations folders` applies the same rule); ids that still collide (the same name
in two classes of one split) are reported as failures and only the first is kept.

Frames larger than --size pixels (shorter side) are shrunk to it, smaller ones are kept (--upscale
enlarges them too; 0 keeps every size); it prints the layout it detected and the ids it renamed.
Frames are optionally resampled to --fps, and saved with --quality. Each finished folder gets a
`.done` marker holding its frame count, written after the last frame, so an interrupted run can
simply be started again: finished videos are skipped and half-written folders are redone. A folder is
written under a private name and renamed into place when finished, so several runs may share one
destination (each video is then extracted once or by both, never half). Corrupt, truncated, empty and
non-video files are reported by name and skipped; the exit status is 1 when any video failed.
Re-extracting with other settings needs a fresh DST.
"""
import argparse
import csv
import multiprocessing
import os
import shutil
import sys
from collections import defaultdict
from dataclasses import dataclass, field, replace

import cv2
from tqdm import tqdm

from core.names import printable
from core.result_path import process_alive
from core.video import VideoError, iter_frames, resize_short_side

VIDEO_EXTENSIONS = (".avi", ".mp4", ".mkv", ".webm", ".gif", ".mov", ".m4v", ".mpg", ".mpeg",
                    ".flv", ".wmv", ".3gp", ".ogv")
SPLIT_NAMES = ("train", "training", "val", "valid", "validation", "test", "testing")
FRAME_TEMPLATE = "image_{:05d}.jpg"
SIZE = 240  # default shorter side of the frames, in pixels (core.flow uses it for video files too)
MARKER = ".done"
UNLABELED = "test"


@dataclass(frozen=True)
class Video:
    path: str            # the video file
    label: str           # class name: the frame folder is DST/<label>/<video_id>
    video_id: str
    split: str = ""      # split folder or CSV split column, "" when the layout has none


@dataclass(frozen=True)
class Outcome:
    video: str           # the video file
    frames_dir: str
    n_frames: int = 0
    reason: str = ""     # why it was skipped or failed


@dataclass
class Summary:
    ok: list = field(default_factory=list)       # Outcome per extracted video
    skipped: list = field(default_factory=list)  # finished in an earlier run
    failed: list = field(default_factory=list)   # Outcome with the reason


def is_video_file(name):
    return not name.startswith(".") and os.path.splitext(name)[1].lower() in VIDEO_EXTENSIONS


def _videos_in(folder, label, split=""):
    return [Video(os.path.join(folder, name), label, os.path.splitext(name)[0], split)
            for name in sorted(os.listdir(folder)) if is_video_file(name)]


def _subfolders(folder):
    return sorted(name for name in os.listdir(folder) if os.path.isdir(os.path.join(folder, name)))


def detect_layout(src, csv_path=None):
    if csv_path:
        return "csv"
    for name in _subfolders(src):
        if name.lower() in SPLIT_NAMES and _subfolders(os.path.join(src, name)):
            return "splits"
    return "classes"


def _videos_from_csv(src, csv_path):
    # Index the files once: Kinetics has hundreds of thousands of them, in SRC or in SRC/<label>/.
    by_stem = {}
    for folder in [src] + [os.path.join(src, name) for name in _subfolders(src)]:
        for name in sorted(os.listdir(folder)):
            if is_video_file(name):
                by_stem.setdefault(os.path.splitext(name)[0], os.path.join(folder, name))
    videos = []
    with open(csv_path, newline="") as f:
        reader = csv.DictReader(f)
        columns = set(reader.fieldnames or ())
        if "youtube_id" not in columns and "video" not in columns:
            raise ValueError(f"{csv_path}: expected Kinetics columns (label,youtube_id,time_start,time_end,split) "
                             f"or columns video,label; found {sorted(columns)}")
        for row in reader:
            if "youtube_id" in columns:
                video_id = "{}_{:06d}_{:06d}".format(row["youtube_id"], int(float(row["time_start"])),
                                                     int(float(row["time_end"])))
            else:
                video_id = os.path.splitext(os.path.basename(row["video"]))[0]
            label = (row.get("label") or "").strip() or UNLABELED
            # A listed file that is missing keeps a path that fails to open, so it is reported like a bad file.
            path = by_stem.get(video_id, os.path.join(src, video_id + ".mp4"))
            videos.append(Video(path, label, video_id, (row.get("split") or "").strip()))
    return videos


def list_videos(src, layout="auto", csv_path=None):
    """The dataset's videos with their labels and unique ids, and the duplicates left out.

    Returns (videos, duplicates): lists of Video; each duplicate shares its video id with an earlier video.
    """
    if layout == "auto":
        layout = detect_layout(src, csv_path)
    if layout == "classes":
        videos = [v for label in _subfolders(src) for v in _videos_in(os.path.join(src, label), label)]
    elif layout == "splits":
        videos = [v for split in _subfolders(src) for label in _subfolders(os.path.join(src, split))
                  for v in _videos_in(os.path.join(src, split, label), label, split)]
    elif layout == "csv":
        if not csv_path:
            raise ValueError("the csv layout needs --csv FILE")
        videos = _videos_from_csv(src, csv_path)
    else:
        raise ValueError(f"unknown layout {layout!r}; use auto, classes, splits or csv")

    splits_of_id = defaultdict(set)
    for video in videos:
        splits_of_id[video.video_id].add(video.split)
    videos = [replace(v, video_id=f"{v.split}_{v.video_id}") if len(splits_of_id[v.video_id]) > 1 else v
              for v in videos]
    unique, duplicates, seen = [], [], set()
    for video in videos:
        (duplicates if video.video_id in seen else unique).append(video)
        seen.add(video.video_id)
    return unique, duplicates


def count_frames(frames_dir):
    """Number of image_*.jpg files in a frame folder (0 when it does not exist)."""
    if not os.path.isdir(frames_dir):
        return 0
    return sum(1 for name in os.listdir(frames_dir) if name.startswith("image_") and name.endswith(".jpg"))


def is_finished(frames_dir):
    """True when the folder has its completion marker and the frame count it records."""
    try:
        with open(os.path.join(frames_dir, MARKER)) as f:
            return int(f.read()) == count_frames(frames_dir)
    except (OSError, ValueError):
        return False


def unmarked_tree(frames_dirs):
    """True when none of `frames_dirs` has a .done marker: frames made by another tool (kenshohara's
    generate_video_jpgs.py), to be read as they are. Where some folders have one, the others are unfinished."""
    return not any(os.path.exists(os.path.join(frames_dir, MARKER)) for frames_dir in frames_dirs)


def stored_size(frame, size=SIZE, upscale=False):
    """A decoded frame at the size its JPEG is written: shrunk to a short side of `size` when larger (or
    resized to it with `upscale`); 0 keeps every size. core.predict shrinks frames alike before their flow."""
    return resize_short_side(frame, size) if upscale or min(frame.shape[:2]) > size else frame


def extract_video(video_path, frames_dir, size=SIZE, fps=None, quality=95, upscale=False):
    """Write a video's frames and the completion marker into a private folder, then rename it to frames_dir;
    return the count.

    Concurrent runs on one destination never see or delete each other's half-written folders: each writes
    its own `.<video_id>.tmp<pid>` and the rename publishes a finished folder at once. When another run
    published frames_dir first, its folder is kept and FinishedElsewhere is raised. Frames whose shorter side
    exceeds `size` are shrunk to it; smaller ones are kept as they are unless `upscale` (enlarging adds no
    detail, only disk: a 112 px video at 240 takes 4.6x the space).
    """
    parent, video_id = os.path.split(frames_dir)
    os.makedirs(parent, exist_ok=True)
    _remove_dead_temporaries(parent, video_id)
    temporary = os.path.join(parent, f".{video_id}.tmp{os.getpid()}")
    shutil.rmtree(temporary, ignore_errors=True)
    os.makedirs(temporary)
    n_frames = 0
    try:
        for n_frames, frame in enumerate(iter_frames(video_path, fps), 1):
            image = cv2.cvtColor(stored_size(frame, size, upscale), cv2.COLOR_RGB2BGR)
            frame_path = os.path.join(temporary, FRAME_TEMPLATE.format(n_frames))
            if not cv2.imwrite(frame_path, image, [cv2.IMWRITE_JPEG_QUALITY, quality]):
                raise OSError(f"{os.path.join(frames_dir, FRAME_TEMPLATE.format(n_frames))}: cannot write the frame")
        with open(os.path.join(temporary, MARKER), "w") as f:
            f.write(str(n_frames))
        _publish(temporary, frames_dir)
    finally:
        shutil.rmtree(temporary, ignore_errors=True)  # gone after a rename; else no half-written folder stays
    return n_frames


class FinishedElsewhere(Exception):
    """Another run published the frame folder while this one was extracting it."""


def _publish(temporary, frames_dir):
    for _ in range(3):
        try:
            os.rename(temporary, frames_dir)  # atomic; fails if frames_dir exists and is not empty
            return
        except OSError:
            if is_finished(frames_dir):
                raise FinishedElsewhere(frames_dir) from None
            # A folder half-written by an interrupted run of an older version (or emptied by hand): replace it.
            shutil.rmtree(frames_dir, ignore_errors=True)
    os.rename(temporary, frames_dir)


def _remove_dead_temporaries(parent, video_id):
    """Private folders of runs killed while extracting this video (their process is gone)."""
    prefix = f".{video_id}.tmp"
    for name in os.listdir(parent):
        if name.startswith(prefix) and name[len(prefix):].isdigit() and not process_alive(int(name[len(prefix):])):
            shutil.rmtree(os.path.join(parent, name), ignore_errors=True)


def _extract_task(task):
    """Worker: returns (status, Outcome) with status "ok", "skipped" or "failed"."""
    video, frames_dir, size, fps, quality, upscale = task
    if is_finished(frames_dir):
        return "skipped", Outcome(video.path, frames_dir, count_frames(frames_dir), "already extracted")
    try:
        return "ok", Outcome(video.path, frames_dir,
                             extract_video(video.path, frames_dir, size, fps, quality, upscale))
    except FinishedElsewhere:
        return "skipped", Outcome(video.path, frames_dir, count_frames(frames_dir), "extracted by another run")
    except VideoError as error:
        return "failed", Outcome(video.path, frames_dir, 0, error.reason)
    except OSError as error:
        return "failed", Outcome(video.path, frames_dir, 0, str(error))


def extract_dataset(src, dst, size=SIZE, fps=None, quality=95, workers=1, layout="auto", csv=None, upscale=False):
    """Extract every video under src into dst/<class>/<video_id>/; return a Summary."""
    videos, duplicates = list_videos(src, layout, csv)
    summary = Summary()
    for video in duplicates:
        summary.failed.append(Outcome(video.path, "", 0, f"duplicate video id {video.video_id}"))
    tasks = [(video, os.path.join(dst, video.label, video.video_id), size, fps, quality, upscale)
             for video in videos]
    # Spawned workers do not inherit the parent's threads or locks (forking them can deadlock).
    pool = multiprocessing.get_context("spawn").Pool(workers) if workers > 1 else None
    results = pool.imap(_extract_task, tasks) if pool else map(_extract_task, tasks)
    try:
        for status, outcome in tqdm(results, total=len(tasks), desc="videos", unit="video"):
            getattr(summary, status).append(outcome)
            if status == "failed":
                tqdm.write(f"failed: {printable(outcome.video)}: {printable(outcome.reason)}", file=sys.stderr)
    finally:
        if pool:
            pool.close()
            pool.join()
    return summary


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m core.extract_frames", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("src", help="folder of videos")
    parser.add_argument("dst", help="output folder of frame folders")
    parser.add_argument("--size", type=int, default=SIZE,
                        help=f"shrink frames whose shorter side is larger to this many pixels (default {SIZE}); "
                             "smaller videos are kept as they are (see --upscale); 0 keeps every size")
    parser.add_argument("--upscale", action="store_true",
                        help="also enlarge smaller videos to --size (kenshohara's generate_video_jpgs.py scales all)")
    parser.add_argument("--fps", type=float, default=None, help="resample to this frame rate (default: keep)")
    parser.add_argument("--quality", type=int, default=95, help="JPEG quality, 1..100")
    parser.add_argument("--workers", type=int, default=1, help="worker processes")
    parser.add_argument("--layout", default="auto", choices=("auto", "classes", "splits", "csv"),
                        help="how SRC is organised (see above)")
    parser.add_argument("--csv", default=None, help="CSV listing the videos (Kinetics or video,label columns)")
    args = parser.parse_args(argv)
    if not 1 <= args.quality <= 100:
        parser.error(f"--quality must be between 1 and 100, got {args.quality}")
    if args.fps is not None and args.fps <= 0:
        parser.error(f"--fps must be positive, got {args.fps}")
    if args.workers < 1:
        parser.error(f"--workers must be at least 1, got {args.workers}")
    try:
        layout = args.layout if args.layout != "auto" else detect_layout(args.src, args.csv)
        print(f"{args.src}: layout '{layout}'" + ("" if args.layout != "auto" else
              {"csv": " (--csv given)", "splits": " (split folders of class folders found)",
               "classes": " (class folders; no train/val/test split folders found)"}[layout]))
        renamed = sorted(v.video_id for v in list_videos(args.src, layout, args.csv)[0]
                         if v.video_id != os.path.splitext(os.path.basename(v.path))[0])
        # Files beside the class folders belong to no class: say so instead of skipping them silently.
        tops = [args.src] + ([os.path.join(args.src, split) for split in _subfolders(args.src)]
                             if layout == "splits" else [])
        loose = [os.path.join(top, name) for top in tops if layout != "csv" for name in sorted(os.listdir(top))
                 if is_video_file(name) and os.path.isfile(os.path.join(top, name))]
        if loose:
            print(f"warning: {len(loose)} video files are not in a class folder and are not extracted (put them "
                  f"in SRC/<class>/, or classify them with predict): {', '.join(loose[:5])}"
                  f"{' ...' if len(loose) > 5 else ''}")
        if renamed:
            print(f"{len(renamed)} video ids occur in several splits and get their split as prefix "
                  f"(e.g. {renamed[0]}): {', '.join(renamed[:5])}{' ...' if len(renamed) > 5 else ''}")
        summary = extract_dataset(args.src, args.dst, args.size, args.fps, args.quality, args.workers,
                                  layout, args.csv, args.upscale)
    except (ValueError, OSError) as error:
        parser.error(str(error))
    print(f"extracted {len(summary.ok)} videos, skipped {len(summary.skipped)} already extracted, "
          f"{len(summary.failed)} failed")
    for outcome in summary.failed:
        print(f"  failed: {printable(outcome.video)}: {printable(outcome.reason)}")
    return 1 if summary.failed else 0


if __name__ == "__main__":
    sys.exit(main())
