"""Build kenshohara's annotation JSON from a dataset's split files and its extracted frames.

    python -m core.annotations ucf101 SPLITS_DIR FRAMES_ROOT DST_DIR     # -> DST_DIR/ucf101_0{1,2,3}.json
    python -m core.annotations hmdb51 SPLITS_DIR FRAMES_ROOT DST_DIR     # -> DST_DIR/hmdb51_{1,2,3}.json
    python -m core.annotations kinetics CSV_DIR FRAMES_ROOT DST_JSON
    python -m core.annotations folders VIDEO_ROOT FRAMES_ROOT DST_JSON [--test-subset validation|testing]
    python -m core.annotations mit DIR FRAMES_ROOT DST_JSON
    python -m core.annotations activitynet ACTIVITYNET_JSON FRAMES_ROOT DST_JSON [--videos-dir DIR]
    (each also takes --no-markers, see below, and --videos: FRAMES_ROOT holds the video files
    <class>/<video_id>.<ext> themselves, for frame_source: video)

The output matches kenshohara/3D-ResNets-PyTorch's util_scripts (ucf101_json.py, hmdb51_json.py,
kinetics_json.py, mit_json.py) field for field:

    {"labels": [...], "database": {video_id: {"subset": "training" | "validation" | "testing",
                                              "annotations": {"label": ..., "segment": [1, n_frames + 1]}}}}

  ucf101    SPLITS_DIR holds classInd.txt, trainlist0N.txt, testlist0N.txt. Labels in classInd order;
            trainlist videos are "training", testlist videos "validation".
  hmdb51    SPLITS_DIR holds <class>_test_split{1,2,3}.txt (lines "video.avi 0|1|2"): 1 is "training",
            2 "validation", 0 is left out. Labels sorted.
  kinetics  CSV_DIR holds kinetics_train.csv, kinetics_val.csv and optionally kinetics_test.csv
            (columns label,youtube_id,time_start,time_end,...). Labels in the order they first appear
            in the train CSV; test videos are "testing" with no label, their frames in FRAMES_ROOT/test/.
  folders   VIDEO_ROOT is the original video tree <split>/<class>/<video> (split folders train, val,
            test, ...); no split files needed. Labels sorted; ids follow core.extract_frames (an id
            present in several splits becomes <split>_<id>). test folders map to --test-subset.

n_frames counts the image_*.jpg files in FRAMES_ROOT/<label>/<video_id>, a folder that
core.extract_frames finished (its .done marker records that count). A listed video without frames,
or with a folder left half-written by an interrupted extraction, is left out with a warning that
names it: run core.extract_frames again to finish those. Kinetics keeps such videos, listed without
a segment, as kenshohara's kinetics_json.py does (many YouTube videos cannot be downloaded): the
datasets skip them, and eval_accuracy counts them wrong unless --ignore, the reference's denominator.
Frames from other tools (kenshohara's generate_video_jpgs.py) carry no markers: a tree where no folder
has one is counted as it is (a line says so), and --no-markers counts every folder as it is. An
annotation with no video is an error. Video ids are file names without their extension.
"""
import argparse
import csv
import glob
import json
import math
import os
import re
import sys

from tqdm import tqdm

from core.extract_frames import MARKER, UNLABELED, count_frames, is_finished, list_videos, unmarked_tree
from core.frames import FrameError
from core.names import printable
from core.video_clips import VideoIndex, find_video_file

SUBSETS = {"train": "training", "training": "training",
           "val": "validation", "valid": "validation", "validation": "validation"}
MAX_LISTED = 20


def _entry(subset, label):
    return {"subset": subset, "annotations": {} if label is None else {"label": label}}


def _video_id(path):
    return os.path.splitext(os.path.basename(path))[0]


def _read_rows(path):
    """Whitespace-separated fields of each non-empty line (the split files may have Windows line endings)."""
    with open(path) as f:
        return [line.split() for line in f if line.strip()]


def _warn_left_out(video_ids, problem):
    if video_ids:
        listed = ", ".join(map(printable, video_ids[:MAX_LISTED])) + (f" and {len(video_ids) - MAX_LISTED} more"
                                                         if len(video_ids) > MAX_LISTED else "")
        print(f"warning: {len(video_ids)} videos {problem} and are left out: {listed}", file=sys.stderr)


def _warn_kept(video_ids, problem):
    if video_ids:
        listed = ", ".join(video_ids[:MAX_LISTED]) + (f" and {len(video_ids) - MAX_LISTED} more"
                                                         if len(video_ids) > MAX_LISTED else "")
        print(f"warning: {len(video_ids)} videos {problem}; they are kept without a segment (the reference's "
              f"denominator: eval_accuracy counts them wrong unless --ignore): {listed}", file=sys.stderr)


def _count_video_frames(stem):
    """Frames of the video file <stem>.<ext> (0 if none or unreadable), as core.video_clips indexes them."""
    path = find_video_file(stem)
    try:
        return len(VideoIndex(path)) if path else 0
    except FrameError as error:
        print(f"warning: {error}", file=sys.stderr)
        return 0


def add_segments(data, frames_root, source="", markers=True, keep_missing=False, video_files=False):
    """Set each video's segment [1, n_frames + 1]; drop and report videos without finished frame folders.

    With `markers`, a folder counts only when core.extract_frames finished it (is_finished), unless no
    folder has a marker (a tree written by another tool); without, any frames count. `keep_missing` keeps
    the videos without frames listed without a segment, as kenshohara's kinetics_json.py does: training
    skips them, and eval_accuracy counts them wrong unless --ignore (the reference's denominator).
    `video_files`: frames_root holds the video files <label>/<video_id>.<ext> (config frame_source: video),
    whose frames are counted from their packets. Returns the ids without a segment.
    """
    database = data["database"]
    missing, unfinished = [], []
    frames_dirs = {video_id: os.path.join(frames_root, entry["annotations"].get("label", UNLABELED), video_id)
                   for video_id, entry in database.items()}
    if markers and not video_files and unmarked_tree(frames_dirs.values()):
        print(f"{frames_root}: no frame folder has a {MARKER} marker: frames made by another tool, counted as they "
              "are", file=sys.stderr)
        markers = False
    for video_id, entry in tqdm(list(database.items()), desc="count frames", unit="video", leave=False):
        frames_dir = frames_dirs[video_id]
        n_frames = _count_video_frames(frames_dir) if video_files else count_frames(frames_dir)
        if n_frames and (video_files or not markers or is_finished(frames_dir)):
            entry["annotations"]["segment"] = [1, n_frames + 1]
            continue
        (unfinished if n_frames else missing).append(video_id)
        if not keep_missing:
            del database[video_id]
    source = source or "the split files"
    if keep_missing:
        _warn_kept(missing + unfinished, f"listed in {source} have no (finished) frame folder under {frames_root}")
        return missing + unfinished
    _warn_left_out(missing, f"listed in {source} have no frames under {frames_root}")
    _warn_left_out(unfinished, f"listed in {source} have unfinished frame folders under {frames_root} (no {MARKER} "
                               f"marker with their frame count: rerun core.extract_frames; frames from another tool "
                               f"need --no-markers)")
    return missing + unfinished


def ucf101(splits_dir, frames_root, split_index, markers=True, video_files=False):
    """One UCF-101 split as kenshohara's ucf101_json.py builds it."""
    labels = [row[1] for row in _read_rows(os.path.join(splits_dir, "classInd.txt"))]
    database = {}
    for list_name, subset in (("trainlist", "training"), ("testlist", "validation")):
        for row in _read_rows(os.path.join(splits_dir, f"{list_name}{split_index:02d}.txt")):
            label = row[0].split("/")[0]
            database[_video_id(row[0])] = _entry(subset, label)
    data = {"labels": labels, "database": database}
    add_segments(data, frames_root, f"{splits_dir} split {split_index}", markers, video_files=video_files)
    return data


def _hmdb51_label(file_name):
    return file_name.rsplit("_", 2)[0]  # "brush_hair_test_split1.txt" -> "brush_hair"


def hmdb51(splits_dir, frames_root, split_index, markers=True, video_files=False):
    """One HMDB-51 split as kenshohara's hmdb51_json.py builds it."""
    split_files = sorted(glob.glob(os.path.join(splits_dir, "*_test_split[0-9].txt")))
    labels = sorted({_hmdb51_label(os.path.basename(path)) for path in split_files})
    database = {}
    for path in split_files:
        if not path.endswith(f"_test_split{split_index}.txt"):
            continue
        for row in _read_rows(path):
            if row[1] != "0":
                subset = "training" if row[1] == "1" else "validation"
                database[_video_id(row[0])] = _entry(subset, _hmdb51_label(os.path.basename(path)))
    data = {"labels": labels, "database": database}
    add_segments(data, frames_root, f"{splits_dir} split {split_index}", markers, video_files=video_files)
    return data


def _kinetics_rows(csv_path):
    with open(csv_path, newline="") as f:
        reader = csv.DictReader(f)
        missing = {"label", "youtube_id", "time_start", "time_end"} - set(reader.fieldnames or ())
        if missing - {"label"} or ("label" in missing and not csv_path.endswith("_test.csv")):
            raise ValueError(f"{csv_path}: missing columns {sorted(missing)}")
        return list(reader)


def _kinetics_id(row):
    return "{}_{:06d}_{:06d}".format(row["youtube_id"], int(float(row["time_start"])), int(float(row["time_end"])))


def kinetics(csv_dir, frames_root, markers=True, video_files=False):
    """Kinetics as kenshohara's kinetics_json.py builds it."""
    train_rows = _kinetics_rows(os.path.join(csv_dir, "kinetics_train.csv"))
    labels = list(dict.fromkeys(row["label"] for row in train_rows))
    database = {}
    for name, subset in (("train", "training"), ("val", "validation"), ("test", "testing")):
        csv_path = os.path.join(csv_dir, f"kinetics_{name}.csv")
        if subset == "testing" and not os.path.exists(csv_path):
            continue
        for row in train_rows if subset == "training" else _kinetics_rows(csv_path):
            database[_kinetics_id(row)] = _entry(subset, None if subset == "testing" else row["label"])
    data = {"labels": labels, "database": database}
    add_segments(data, frames_root, csv_dir, markers, keep_missing=True, video_files=video_files)
    return data


def mit(dir_path, frames_root, markers=True, video_files=False):
    """Moments in Time as kenshohara's mit_json.py builds it (moments_categories.txt, trainingSet.csv,
    validationSet.csv, optional testingSet.csv; 339 classes in the categories file's order)."""
    def rows(name):
        with open(os.path.join(dir_path, name), newline="") as f:
            return [row for row in csv.reader(f) if row]

    labels = [row[0] for row in rows("moments_categories.txt")]
    database = {}
    for name, subset in (("trainingSet.csv", "training"), ("validationSet.csv", "validation"),
                         ("testingSet.csv", "testing")):
        if subset == "testing" and not os.path.exists(os.path.join(dir_path, name)):
            continue
        for row in rows(name):
            # "<label>/<file>.mp4,<label>,..." ("<file>.mp4" alone in the test list)
            database[_video_id(row[0])] = _entry(subset, None if subset == "testing" else row[1])
    data = {"labels": labels, "database": database}
    add_segments(data, frames_root, dir_path, markers, video_files=video_files)
    return data


ACTIVITYNET_MIN_FRAMES = 8  # kenshohara's ActivityNet dataset drops shorter segments


def activitynet_labels(data):
    """The leaf classes of the taxonomy, in its order (kenshohara's datasets/activitynet.get_class_labels)."""
    parents = {node["parentId"] for node in data["taxonomy"]}
    return [node["nodeName"] for node in data["taxonomy"] if node["nodeId"] not in parents]


def video_fps(path):
    """The frame rate a video file's header states (what ffprobe prints as 'fps'), or None."""
    import av
    try:
        with av.open(path) as container:
            rate = container.streams.video[0].average_rate
    except (av.error.FFmpegError, OSError, IndexError):
        return None
    return float(rate) if rate else None


def add_fps(data, videos_dir):
    """kenshohara's add_fps_into_activitynet_json.py: `fps` of each database entry from v_<id>.mp4 in
    videos_dir (an entry whose file is missing or unreadable gets none)."""
    for video_id, entry in data["database"].items():
        fps = video_fps(os.path.join(videos_dir, f"v_{video_id}.mp4"))
        if fps is not None:
            entry["fps"] = fps


def activitynet(activitynet_json, frames_root, videos_dir=None, markers=True):
    """ActivityNet (official JSON: taxonomy, untrimmed videos, segments in seconds) as kenshohara's
    datasets/activitynet.py samples it: each annotated segment is one entry '<id>_<k>' whose frames are
    floor(begin x fps) + 1 .. min(floor(end x fps) + 1, n_frames) - 1 of the folder FRAMES_ROOT/v_<id>
    (his layout, named by the entry's 'video'); segments under 8 frames are dropped. Testing videos are
    one unlabelled entry each, the whole video (his untrimmed setting). `fps` comes from the JSON (after
    his add_fps_into_activitynet_json.py) or, with `videos_dir`, from v_<id>.mp4 there, and is written
    into each entry. Listed videos without frames are kept without a segment, as for Kinetics."""
    with open(activitynet_json) as f:
        source = json.load(f)
    if videos_dir:
        add_fps(source, videos_dir)
    database, no_fps, no_frames, short = {}, [], [], []
    for video_id, entry in source["database"].items():
        subset, fps, folder = entry["subset"], entry.get("fps"), f"v_{video_id}"
        frames_dir = os.path.join(frames_root, folder)
        n_frames = count_frames(frames_dir) if (not markers or is_finished(frames_dir)) else 0
        if n_frames and fps is None:
            no_fps.append(video_id)
            continue
        if not n_frames:
            no_frames.append(video_id)
        annotations = entry["annotations"] if subset != "testing" else [None]
        for k, annotation in enumerate(annotations, 1):
            key = f"{video_id}_{k}" if annotation else video_id
            new = {"subset": subset, "video": folder, **({"fps": fps} if fps else {}),
                   "annotations": {"label": annotation["label"]} if annotation else {}}
            if n_frames:
                begin, end = 1, n_frames + 1  # testing: the whole video (his untrimmed setting)
                if annotation:
                    begin = math.floor(annotation["segment"][0] * fps) + 1
                    end = min(math.floor(annotation["segment"][1] * fps) + 1, n_frames)
                if end - begin < ACTIVITYNET_MIN_FRAMES:
                    short.append(key)
                    continue
                new["annotations"]["segment"] = [begin, end]
            database[key] = new
    _warn_left_out(no_fps, "have frames but no fps (give --videos-dir, or add it as add_fps_into_activitynet_json.py "
                           "does)")
    _warn_left_out(short, f"are segments of fewer than {ACTIVITYNET_MIN_FRAMES} frames")
    _warn_kept(no_frames, f"have no (finished) frame folder v_<id> under {frames_root}")
    return {"labels": activitynet_labels(source), "database": database}


def folders(video_root, frames_root, test_subset="validation", markers=True, video_files=False):
    """Split folders <split>/<class>/<video> of the original videos, like a fight-detection dataset."""
    subsets = dict(SUBSETS, test=test_subset, testing=test_subset)
    videos, duplicates = list_videos(video_root, "splits")
    unknown = sorted({v.split for v in videos if v.split.lower() not in subsets})
    if unknown:
        raise ValueError(f"{video_root}: unknown split folders {unknown}; use train, val or test")
    if duplicates:
        print(f"warning: {len(duplicates)} videos share an id with another video and are left out: "
              + ", ".join(v.path for v in duplicates[:MAX_LISTED]), file=sys.stderr)
    labels = sorted({v.label for v in videos})
    database = {v.video_id: _entry(subsets[v.split.lower()], v.label) for v in videos}
    data = {"labels": labels, "database": database}
    add_segments(data, frames_root, video_root, markers, video_files=video_files)
    return data


def write_json(data, path):
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    with open(path, "w") as f:
        json.dump(data, f)


def _split_indices(splits_dir, pattern):
    """Split numbers N for which a file matching pattern (a regex with one group for N) exists."""
    matches = (re.fullmatch(pattern, name) for name in os.listdir(splits_dir))
    return sorted({int(m.group(1)) for m in matches if m})


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m core.annotations", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    commands = parser.add_subparsers(dest="dataset", required=True)
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--no-markers", dest="markers", action="store_false",
                        help=f"count frame folders without the {MARKER} marker of core.extract_frames "
                             "(frames extracted by another tool)")
    common.add_argument("--videos", action="store_true",
                        help="FRAMES_ROOT holds the video files <class>/<video_id>.<mp4|mkv|webm|avi> themselves "
                             "(config frame_source: video): frames are counted from their packets")
    for name, source_help in (("ucf101", "folder with classInd.txt, trainlist0N.txt, testlist0N.txt"),
                              ("hmdb51", "folder with <class>_test_split{1,2,3}.txt")):
        command = commands.add_parser(name, parents=[common], help=f"{name} split files -> one JSON per split")
        command.add_argument("splits_dir", help=source_help)
        command.add_argument("frames_root", help="extracted frames <root>/<class>/<video_id>/image_00001.jpg")
        command.add_argument("dst_dir", help="folder for the JSON files")
    command = commands.add_parser("kinetics", parents=[common], help="Kinetics CSVs -> one JSON")
    command.add_argument("csv_dir", help="folder with kinetics_train.csv, kinetics_val.csv (, kinetics_test.csv)")
    command.add_argument("frames_root", help="extracted frames <root>/<class>/<video_id>/image_00001.jpg")
    command.add_argument("dst_json", help="output JSON file")
    command = commands.add_parser("mit", parents=[common], help="Moments in Time CSVs -> one JSON")
    command.add_argument("dir_path", help="folder with moments_categories.txt, trainingSet.csv, validationSet.csv "
                                          "(, testingSet.csv)")
    command.add_argument("frames_root", help="extracted frames <root>/<class>/<video_id>/image_00001.jpg")
    command.add_argument("dst_json", help="output JSON file")
    command = commands.add_parser("activitynet", parents=[common],
                                  help="the official ActivityNet JSON -> one JSON, one entry per annotated segment")
    command.add_argument("activitynet_json", help="activity_net.v1-3.min.json (with fps, or give --videos-dir)")
    command.add_argument("frames_root", help="extracted frames <root>/v_<id>/image_00001.jpg (kenshohara's layout)")
    command.add_argument("dst_json", help="output JSON file")
    command.add_argument("--videos-dir", help="folder of the v_<id>.mp4 files: their fps is written into the JSON "
                                              "(kenshohara's add_fps_into_activitynet_json.py)")
    command = commands.add_parser("folders", parents=[common], help="split folders of the original videos -> one JSON")
    command.add_argument("video_root", help="original videos <root>/<split>/<class>/<video>")
    command.add_argument("frames_root", help="extracted frames <root>/<class>/<video_id>/image_00001.jpg")
    command.add_argument("dst_json", help="output JSON file")
    command.add_argument("--test-subset", default="validation", choices=("validation", "testing"),
                         help="subset of videos in test folders (default validation, as UCF-101's testlist)")
    args = parser.parse_args(argv)

    try:
        if args.dataset in ("ucf101", "hmdb51"):
            pattern, build = {"ucf101": (r"trainlist(\d+)\.txt", ucf101),
                              "hmdb51": (r".+_test_split(\d)\.txt", hmdb51)}[args.dataset]
            indices = _split_indices(args.splits_dir, pattern)
            if not indices:
                raise ValueError(f"{args.splits_dir}: no {args.dataset} split files found")
            outputs = {os.path.join(args.dst_dir, "ucf101_{:02d}.json".format(i) if args.dataset == "ucf101"
                                    else f"hmdb51_{i}.json"): build(args.splits_dir, args.frames_root, i, args.markers,
                                                                    args.videos)
                       for i in indices}
        elif args.dataset == "kinetics":
            outputs = {args.dst_json: kinetics(args.csv_dir, args.frames_root, args.markers, args.videos)}
        elif args.dataset == "mit":
            outputs = {args.dst_json: mit(args.dir_path, args.frames_root, args.markers, args.videos)}
        elif args.dataset == "activitynet":
            if args.videos:
                raise ValueError("activitynet reads frame folders v_<id>; --videos is for the other datasets")
            outputs = {args.dst_json: activitynet(args.activitynet_json, args.frames_root, args.videos_dir,
                                                  args.markers)}
        else:
            outputs = {args.dst_json: folders(args.video_root, args.frames_root, args.test_subset, args.markers,
                                              args.videos)}
    except (OSError, ValueError, KeyError) as error:
        parser.error(f"{type(error).__name__}: {error}")
    empty = [path for path, data in outputs.items() if not data["database"]]
    if empty:
        parser.error(f"{', '.join(empty)}: no listed video has frames under {args.frames_root}; nothing written")
    for path, data in outputs.items():
        write_json(data, path)
        subsets = [entry["subset"] for entry in data["database"].values()]
        counts = ", ".join(f"{subsets.count(s)} {s}" for s in ("training", "validation", "testing") if s in subsets)
        print(f"wrote {path}: {len(data['labels'])} labels, {counts}")


if __name__ == "__main__":
    main()
