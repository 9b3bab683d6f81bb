"""Classify video files with a trained checkpoint: `python -m backends.<fw>.predict`, written once.

Each file is decoded straight from its container (core.video, PyAV: avi, mp4, mkv, webm, gif, ...):
no frame extraction, no annotation file. Its frames go through exactly the evaluation preprocessing
of the checkpoint's config (core.spatial.build_spatial and core.temporal.build_temporal with
inference=True: resize the short side to sample_size, centre crop unless inference_crop is nocrop,
normalisation; sliding windows of sample_duration frames every inference_stride frames, after
sample_t_stride; or MMAction2's views with n_inference_clips / inference_crop three), every window is scored, and a video's score is the mean of its windows' softmax,
as in core.evaluation. The one step evaluation has in addition is the JPEG round trip of
extract_frames (and its resize, when the video's short side is not already its --size).

The config is the one stored in the checkpoint (core.class_names), overridden by --config and --set;
a checkpoint without one (a community file) is run with the architecture its shapes imply.
"""
import argparse
import csv
import importlib
import io
import json
import os
import pickle
import sys
from collections import deque
from concurrent.futures import ThreadPoolExecutor

import numpy as np

from core import metrics
from core import archs
from core.checkpoints import read_checkpoint
from core.class_names import LabelsError, class_names_for, read_checkpoint_meta
from core.config import PATH, SCHEMA, ConfigError, load_config
from core.extract_frames import is_video_file
from core.spatial import build_spatial
from core.state_dict import StateDictMismatch
from core.temporal import build_temporal
from core.engine import WeightsFileError
from core.training import atomic_write
from core.video import VideoError, iter_frames_with_rate


def find_videos(paths):
    """(video files in the order given, folders walked recursively and sorted; paths that do not exist)."""
    files, missing = [], []
    for path in paths:
        if os.path.isdir(path):
            for root, dirs, names in os.walk(path):
                dirs.sort()
                files += [os.path.join(root, name) for name in sorted(names) if is_video_file(name)]
        elif os.path.exists(path):
            files.append(path)
        else:
            missing.append(path)
    return files, missing


def _arch_keys(path):
    """Config keys of the architecture a weights file's shapes imply (for files that store no config), with
    its family's input normalisation (the spec's)."""
    checkpoint = read_checkpoint(path)
    spec, kwargs = archs.get(checkpoint.arch), checkpoint.model_kwargs
    keys = {"model": spec.model, "n_classes": kwargs["n_classes"], "mean_dataset": spec.normalisation,
            "modality": next(m for m, c in archs.INPUT_CHANNELS.items() if c == kwargs["n_input_channels"])}
    if spec.depth is not None:
        keys["model_depth"] = spec.depth
    keys.update({option.config_key: kwargs[name] for name, option in spec.options.items() if name in kwargs})
    return keys


def is_onnx(path):
    return path.lower().endswith(".onnx")


def predict_config(resume_path, config_path, overrides, stored_config):
    """The checkpoint's config (paths left out: they name the training machine's data), then the
    --config file, then --set; resume_path is the checkpoint given."""
    if is_onnx(resume_path):  # an exported model: its preprocessing is the --config it was exported with
        base, source = {}, "defaults"
    elif stored_config is None:
        base, source = _arch_keys(resume_path), f"{resume_path} (shapes)"
    else:
        base = {key: value for key, value in stored_config.items()
                if key in SCHEMA and SCHEMA[key].type is not PATH}
        source = f"{resume_path} (stored config)"
    return load_config(config_path, [*overrides, f"resume_path={resume_path}"], require_paths=("resume_path",),
                       base=base, base_source=source)


class VideoScorer:
    """Decode a video file and score its sliding windows with `predict` (numpy clips -> logits)."""

    def __init__(self, config, predict):
        if config["modality"] != "rgb":
            raise ConfigError(f"{config.source}: predict classifies RGB videos; this model is for "
                              f"modality {config['modality']}")
        self.predict = predict
        self.spatial = build_spatial(config, train=False, inference=True)
        self.temporal = build_temporal(config, train=False, inference=True)
        self.batch_size = config["inference_batch_size"] or config["batch_size"]

    def frames(self, path):
        """(frames after the first spatial step, the source frame size, frames per second)."""
        resize, frames, size, fps = None, [], None, 25.0
        for fps, frame in iter_frames_with_rate(path):
            if resize is None:
                # Inference's first transform (Scale) depends on the frame size only: applied to each
                # frame as it is decoded, so full-size frames are never kept (as spatial.load does).
                size = frame.shape[:2]
                resize = self.spatial.transforms[0].region(*size)
                resize.check(*size)
            frames.append(resize(frame))
        return frames, size, fps

    def score(self, path):
        """{"windows": [(first frame, last frame) 1-based], "logits": n_windows x n_classes, "fps", "n_frames"};
        with inference_crop three, one window and row per view (each window three times)."""
        return self._score_frames(*self.frames(path))

    def score_all(self, paths, workers=0):
        """Yield (path, score(path) or the VideoError it raised) in order; `workers` threads decode the next
        videos while the model scores one (PyAV releases the GIL), at most `workers` + 1 decoded at a time."""
        def decode(path):
            try:
                return self.frames(path)
            except VideoError as error:
                return error

        def scored(decoded):
            return decoded if isinstance(decoded, VideoError) else self._score_frames(*decoded)

        if workers < 1:
            yield from ((path, scored(decode(path))) for path in paths)
            return
        with ThreadPoolExecutor(workers, thread_name_prefix="decode") as pool:
            pending = deque()
            for path in paths:
                pending.append((path, pool.submit(decode, path)))
                if len(pending) > workers:
                    done, future = pending.popleft()
                    yield done, scored(future.result())
            while pending:
                done, future = pending.popleft()
                yield done, scored(future.result())

    def _score_frames(self, frames, size, fps):
        clips = self.temporal(list(range(1, len(frames) + 1)))
        # One row per view (three per window with inference_crop three): the mean of their softmax is the
        # video's score, as in evaluation.
        windows = [window for window in clips for _ in range(self.spatial.n_views)]
        logits, step = [], max(1, self.batch_size // self.spatial.n_views)
        for begin in range(0, len(clips), step):
            batch = [view for window in clips[begin:begin + step]
                     for view in self.spatial.split(self._clip(frames, size, window))]
            logits.append(np.asarray(self.predict(np.stack(batch)), np.float64))
        return {"windows": [(min(w), max(w)) for w in windows], "logits": np.concatenate(logits),
                "fps": fps, "n_frames": len(frames)}

    def _clip(self, frames, size, window):
        # spatial.load with a reader that hands back the frames already through the first transform.
        clip = self.spatial.load(lambda reduction, each: np.stack([frames[i - 1] for i in window]), size)
        return np.ascontiguousarray(clip.transpose(3, 0, 1, 2), dtype=np.float32)


def _video_key(path):
    return os.path.normpath(path)


def write_results(path, results, class_names, top_k):
    """--output: kenshohara's val.json ({"results": {video: [{label, score}, ...]}}) or CSV, by extension."""
    keys = list(results)
    probs = np.stack([results[key] for key in keys]) if keys else np.zeros((0, len(class_names)))
    entries = metrics.video_results(keys, probs, class_names, top_k)
    if path.lower().endswith(".csv"):
        text = io.StringIO()
        writer = csv.writer(text)
        k = min(top_k, len(class_names))
        writer.writerow(["video"] + [f"{field}_{rank}" for rank in range(1, k + 1) for field in ("label", "score")])
        for key in keys:
            writer.writerow([key] + [value for entry in entries[key]
                                     for value in (entry["label"], f"{entry['score']:.6f}")])
        content = text.getvalue()
    else:
        content = json.dumps({"results": entries})
    atomic_write(path, lambda tmp: open(tmp, "w", newline="").write(content))


def _timeline_name(path, used):
    stem = os.path.splitext(os.path.basename(path))[0]
    name, n = stem, 1
    while name in used:
        n += 1
        name = f"{stem}_{n}"
    used.add(name)
    return name


def write_timeline(directory, name, video, scored, class_names, top_k):
    """<name>.json: every window's start/end in seconds and class probabilities; <name>.png: the
    probabilities of the classes that reach the top `top_k` somewhere, over time."""
    probs = metrics.softmax(scored["logits"])
    fps = scored["fps"]
    windows = [{"start": (first - 1) / fps, "end": last / fps, "frames": [first, last],
                "scores": [round(float(p), 6) for p in row]} for (first, last), row in zip(scored["windows"], probs)]
    record = {"video": video, "fps": fps, "n_frames": scored["n_frames"], "class_names": class_names,
              "windows": windows}
    os.makedirs(directory, exist_ok=True)
    json_path = os.path.join(directory, f"{name}.json")
    atomic_write(json_path, lambda tmp: open(tmp, "w").write(json.dumps(record)))

    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    shown = sorted(set(np.argsort(-probs, axis=1, kind="stable")[:, :min(top_k, len(class_names))].ravel().tolist()))
    figure = Figure(figsize=(8, 3.2))
    FigureCanvasAgg(figure)
    axes = figure.add_subplot()
    centres = [(w["start"] + w["end"]) / 2 for w in windows]
    for c in shown:
        axes.step(centres, probs[:, c], where="mid", marker="o", markersize=3, label=class_names[c])
    axes.set_ylim(0, 1.02)
    axes.set_xlabel("time (s, window centre)")
    axes.set_ylabel("probability")
    axes.set_title(os.path.basename(video), fontsize=9)
    axes.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.0, 1.0))
    figure.tight_layout()
    png_path = os.path.join(directory, f"{name}.png")
    atomic_write(png_path, lambda tmp: figure.savefig(tmp, dpi=100, format="png"))
    return json_path, png_path


def predict_main(framework, engine_module, argv=None):
    """`engine_module` (e.g. 'backends.torch.engine', whose build_predictor is used) is imported only to run a
    checkpoint: an .onnx model runs on onnxruntime, importing no training framework (core.onnx_predictor)."""
    parser = argparse.ArgumentParser(
        prog=f"python -m backends.{framework}.predict",
        description=f"Classify video files with {framework}: decode each file (any container PyAV reads), "
                    "apply the checkpoint's evaluation preprocessing, score every sliding window and print "
                    "the top-k classes per video (mean of the windows' softmax). Bad files are reported and "
                    "skipped; the exit status is 1 when any file failed.")
    parser.add_argument("inputs", nargs="+", metavar="VIDEO_OR_FOLDER",
                        help="video files, or folders walked recursively")
    parser.add_argument("--resume_path", required=True,
                        help="checkpoint to run (any format convert reads), or an .onnx file of python -m "
                             "convert.export (then give its --config and --labels: an .onnx stores neither)")
    parser.add_argument("--config", help="YAML config overriding the one stored in the checkpoint")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                        help="override a config key (e.g. inference_stride=8); repeatable")
    parser.add_argument("--topk", type=int, help="classes printed / written per video (default: output_topk)")
    parser.add_argument("--output", help="write the results: .json (kenshohara's val.json format) or .csv")
    parser.add_argument("--timeline", metavar="DIR",
                        help="per video, DIR/<name>.json with every window's start/end (s) and scores, and "
                             "DIR/<name>.png plotting the class probabilities over time")
    parser.add_argument("--labels", help="class names when the checkpoint has none (one per line, or an "
                                         "annotation JSON); overrides the checkpoint's")
    args = parser.parse_args(argv)
    try:
        meta = {"class_names": None, "config": None} if is_onnx(args.resume_path) else \
            read_checkpoint_meta(args.resume_path)
        config = predict_config(args.resume_path, args.config, args.set, meta["config"])
    except ConfigError as error:
        raise SystemExit(f"config error: {error}") from None
    except (OSError, ValueError, pickle.UnpicklingError) as error:  # unreadable, foreign or unsafe checkpoint
        raise SystemExit(f"cannot predict: {args.resume_path}: {error}") from None
    try:
        class_names = class_names_for(meta["class_names"], args.labels, config["n_classes"],
                                      log=lambda line: print(line, file=sys.stderr))
        if is_onnx(args.resume_path):
            from core.onnx_predictor import build_onnx_predictor
            try:
                predict = build_onnx_predictor(args.resume_path)
            except (RuntimeError, OSError) as error:  # no onnxruntime, no such file, not an ONNX model
                raise SystemExit(f"cannot predict: {error}") from None
        else:
            predict = importlib.import_module(engine_module).build_predictor(config)
        scorer = VideoScorer(config, predict)
    except (LabelsError, ConfigError) as error:
        raise SystemExit(f"cannot predict: {error}") from None
    except (StateDictMismatch, WeightsFileError) as error:
        raise SystemExit(f"cannot predict: {error}") from None
    top_k = args.topk or config["output_topk"]
    top_k = top_k if top_k > 0 else len(class_names)  # kenshohara: output_topk <= 0 means every class
    videos, missing = find_videos(args.inputs)
    failed = [(path, "no such file or folder") for path in missing]
    results, used_names = {}, set()
    for path, scored in scorer.score_all(videos, config["n_threads"]):
        if isinstance(scored, VideoError):
            failed.append((path, scored.reason))
            print(f"skipped {path}: {scored.reason}", file=sys.stderr)
            continue
        probs = metrics.softmax(scored["logits"]).mean(0)
        key = _video_key(path)
        results[key] = probs
        top = np.argsort(-probs, kind="stable")[:min(top_k, len(class_names))]
        print(f"{key}: " + ", ".join(f"{class_names[c]} {probs[c]:.4f}" for c in top)
              + f"  ({len(scored['windows'])} windows)")
        if args.timeline:
            write_timeline(args.timeline, _timeline_name(path, used_names), key, scored, class_names, top_k)
    if args.output:
        write_results(args.output, results, class_names, top_k)
    if failed:
        print(f"{len(failed)} of {len(videos) + len(missing)} inputs failed: "
              + "; ".join(f"{path} ({reason})" for path, reason in failed), file=sys.stderr)
        raise SystemExit(1)
    if not videos:
        raise SystemExit("no video files found in " + " ".join(args.inputs))
    return results
