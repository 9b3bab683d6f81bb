"""Classify video files with a trained checkpoint: `python -m backends.<fw>.predict`, written once.

Each file is decoded straight from its container (core.video, PyAV: avi, mp4, mkv, webm, gif, ...):
no frame extraction, no annotation file. Its frames go through exactly the evaluation preprocessing
of the checkpoint's config (core.spatial.build_spatial and core.temporal.build_temporal with
inference=True: resize the short side to sample_size, centre crop unless inference_crop is nocrop,
normalisation; sliding windows of sample_duration frames every inference_stride frames, after
sample_t_stride; or MMAction2's views with n_inference_clips / inference_crop three), every window is scored, and a video's score is the mean of its windows' softmax,
as in core.evaluation. The one step evaluation has in addition is the JPEG round trip of
extract_frames (and its resize, when the video's short side is not already its --size).

A flow model (--mode flow, or the flow half of --mode joint) gets the optical flow of the decoded
frames, computed as core.extract_frames + core.flow make a flow model's training frames: frames shrunk
to flow_size, grayscale, flow_method (TV-L1 by default) between consecutive frames, each component
clipped to +-flow_bound and quantised to 0..255 (core.flow.FlowStream, the code core.flow writes its
JPEGs with), then the evaluation preprocessing of flow (to [-1, 1]). Windows slide over the N - 1 pairs
of N frames. --mode joint fuses the two models' video scores with core.fuse.fused, as evaluate --mode
joint does. What evaluate has in addition are the JPEG round trips of the frames and of the flow.

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
from core.extract_frames import is_video_file, stored_size
from core.fuse import FUSION_METHODS, fused
from core.flow import FlowStream, flow_estimator, gray_frame
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


def _clip(spatial, stream, window):
    """spatial.load with a reader that hands back the stream's frames (already through the first transform),
    as a C x T x H x W float32 clip."""
    clip = spatial.load(lambda reduction, each: np.stack([stream.items[i - 1] for i in window]), stream.size)
    return np.ascontiguousarray(clip.transpose(3, 0, 1, 2), dtype=np.float32)


class _Stream:
    """One model's input from decoded frames: the RGB frames, or the optical flow between them, each through
    the first spatial transform (the short-side resize) as it comes."""

    def __init__(self, config):
        self.first_transform = build_spatial(config, train=False, inference=True).transforms[0]
        self.items, self.size = [], None
        self.flow = None
        if config["modality"] == "flow":
            # What core.extract_frames stores (shrunk to flow_size), grayscale, flow_method, quantised to
            # 0..255 over +-flow_bound: the images core.flow writes, without their JPEG round trips.
            self.flow_size = config["flow_size"]
            self.flow = FlowStream(flow_estimator(config["flow_method"]), config["flow_bound"])

    def add(self, frame):
        if self.flow is not None:
            frame = self.flow(gray_frame(stored_size(frame, self.flow_size)))
            if frame is None:  # the first frame: no pair yet
                return
        if self.size is None:
            # Inference's first transform (Scale) depends on the frame size only: applied to each frame
            # as it is decoded, so full-size frames are never kept (as spatial.load does).
            self.size = frame.shape[:2]
            self.resize = self.first_transform.region(*self.size)
            self.resize.check(*self.size)
        self.items.append(self.resize(frame))


class VideoScorer:
    """Decode a video file once and score the sliding windows of each model's stream: `models` is a list of
    (config, predict), predict mapping numpy clips to logits; an RGB model gets the frames, a flow model
    (modality flow) the optical flow computed from them (core.flow, as the config's flow_* keys say)."""

    def __init__(self, models):
        self.models = []
        for config, predict in models:
            self.models.append((config, predict, build_spatial(config, train=False, inference=True),
                                build_temporal(config, train=False, inference=True),
                                config["inference_batch_size"] or config["batch_size"]))

    def frames(self, path):
        """([each model's _Stream of the video], frames per second)."""
        streams, fps = [_Stream(config) for config, *_ in self.models], 25.0
        for fps, frame in iter_frames_with_rate(path):
            for stream in streams:
                stream.add(frame)
        for (config, *_), stream in zip(self.models, streams):
            if config["modality"] == "flow" and not stream.items:
                raise VideoError(path, "fewer than 2 frames, no optical flow")
        return streams, fps

    def score(self, path):
        """Per model, {"windows": [(first, last) 1-based frames, or flow pairs], "logits": n_windows x n_classes,
        "fps", "n_frames", "modality"}; with inference_crop three, one window and row per view (each window three
        times)."""
        return self._score_streams(*self.frames(path))

    def score_all(self, paths, workers=0):
        """Yield (path, score(path) or the VideoError it raised) in order; `workers` threads decode the next
        videos while the model scores one (PyAV releases the GIL), at most `workers` + 1 decoded at a time."""
        def decode(path):
            try:
                return self.frames(path)
            except VideoError as error:
                return error

        def scored(decoded):
            return decoded if isinstance(decoded, VideoError) else self._score_streams(*decoded)

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

    def _score_streams(self, streams, fps):
        return [self._score(model, stream, fps) for model, stream in zip(self.models, streams)]

    @staticmethod
    def _score(model, stream, fps):
        config, predict, spatial, temporal, batch_size = model
        windows = temporal(list(range(1, len(stream.items) + 1)))
        # One row per view (three per window with inference_crop three): the mean of their softmax is the
        # video's score, as in evaluation.
        logits, step = [], max(1, batch_size // spatial.n_views)
        for begin in range(0, len(windows), step):
            batch = [view for window in windows[begin:begin + step]
                     for view in spatial.split(_clip(spatial, stream, window))]
            logits.append(np.asarray(predict(np.stack(batch)), np.float64))
        rows = [window for window in windows for _ in range(spatial.n_views)]
        return {"windows": [(min(w), max(w)) for w in rows], "logits": np.concatenate(logits),
                "fps": fps, "n_frames": len(stream.items), "modality": config["modality"]}


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


def _timeline_windows(scored, probs):
    """Every window's start and end in seconds and its class probabilities. A flow window of pairs
    first..last (pair k: the motion from frame k to k + 1) spans frames first..last + 1."""
    fps, pairs = scored["fps"], scored["modality"] == "flow"
    windows = []
    for (first, last), row in zip(scored["windows"], probs):
        window = {"start": (first - 1) / fps, "end": (last + pairs) / fps, "frames": [first, last + pairs]}
        if pairs:
            window["pairs"] = [first, last]
        window["scores"] = [round(float(p), 6) for p in row]
        windows.append(window)
    return windows


def write_timeline(directory, name, video, streams, class_names, top_k, fusion=None):
    """<name>.json: every window's start/end in seconds and class probabilities ("windows"; in joint mode the
    RGB model's, and the flow model's as "flow_windows"); <name>.png: the probabilities of the classes that
    reach the top `top_k` somewhere, over time (the flow model's dashed)."""
    probs = [metrics.softmax(scored["logits"]) for scored in streams]
    windows = [_timeline_windows(scored, p) for scored, p in zip(streams, probs)]
    first = streams[0]
    record = {"video": video, "fps": first["fps"], "n_frames": first["n_frames"] + (first["modality"] == "flow"),
              "class_names": class_names, "windows": windows[0]}
    if fusion:
        record.update({"flow_windows": windows[1], "fusion": fusion})
    os.makedirs(directory, exist_ok=True)
    json_path = os.path.join(directory, f"{name}.json")
    atomic_write(json_path, lambda tmp: open(tmp, "w").write(json.dumps(record)))

    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    k = min(top_k, len(class_names))
    shown = sorted(set(np.concatenate([np.argsort(-p, axis=1, kind="stable")[:, :k].ravel() for p in probs]).tolist()))
    figure = Figure(figsize=(8, 3.2))
    FigureCanvasAgg(figure)
    axes = figure.add_subplot()
    colours = {c: f"C{i % 10}" for i, c in enumerate(shown)}
    for scored, p, stream_windows in zip(streams, probs, windows):
        centres = [(w["start"] + w["end"]) / 2 for w in stream_windows]
        flow = scored["modality"] == "flow"
        for c in shown:
            axes.step(centres, p[:, c], where="mid", marker="o", markersize=3, color=colours[c],
                      linestyle="--" if flow and fusion else "-",
                      label=class_names[c] + (f" ({scored['modality']})" if fusion else ""))
    axes.set_ylim(0, 1.02)
    axes.set_xlabel("time (s, window centre)")
    axes.set_ylabel("probability")
    axes.set_title(os.path.basename(video), fontsize=9)
    axes.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.0, 1.0))
    figure.tight_layout()
    png_path = os.path.join(directory, f"{name}.png")
    atomic_write(png_path, lambda tmp: figure.savefig(tmp, dpi=100, format="png"))
    return json_path, png_path


def _load_model(path, modality, args, engine_module):
    """(config, predict, class names) of the checkpoint at `path`, its config's modality set to `modality`
    (None: the checkpoint's own); errors end the run with one line."""
    try:
        meta = {"class_names": None, "config": None} if is_onnx(path) else read_checkpoint_meta(path)
        config = predict_config(path, args.config, [*args.set, *([f"modality={modality}"] if modality else [])],
                                meta["config"])
    except ConfigError as error:
        raise SystemExit(f"config error: {error}") from None
    except (OSError, ValueError, pickle.UnpicklingError) as error:  # unreadable, foreign or unsafe checkpoint
        raise SystemExit(f"cannot predict: {path}: {error}") from None
    try:
        class_names = class_names_for(meta["class_names"], args.labels, config["n_classes"],
                                      log=lambda line: print(line, file=sys.stderr))
        if is_onnx(path):
            from core.onnx_predictor import build_onnx_predictor
            try:
                predict = build_onnx_predictor(path)
            except (RuntimeError, OSError) as error:  # no onnxruntime, no such file, not an ONNX model
                raise SystemExit(f"cannot predict: {error}") from None
        else:
            predict = importlib.import_module(engine_module).build_predictor(config)
    except (LabelsError, ConfigError, StateDictMismatch, WeightsFileError) as error:
        raise SystemExit(f"cannot predict: {error}") from None
    return config, predict, class_names


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
                             "convert.export (then give its --config and --labels: an .onnx stores neither); "
                             "the RGB model in --mode joint")
    parser.add_argument("--mode", choices=("rgb", "flow", "joint"), default=None,
                        help="rgb: classify the frames; flow: the optical flow computed from them (the config's "
                             "flow_method, flow_bound, flow_size: as core.extract_frames + core.flow made the flow "
                             "model's frames); joint: both models, --resume_path (RGB) and --flow_resume_path "
                             "(flow), their scores fused as evaluate --mode joint does (default: the checkpoint's "
                             "modality)")
    parser.add_argument("--flow_resume_path", help="checkpoint of the flow model (--mode joint)")
    parser.add_argument("--fusion", choices=FUSION_METHODS, default="softmax",
                        help="joint mode: mean of softmax scores (default) or sum of logits")
    parser.add_argument("--config", help="YAML config overriding the one stored in the checkpoint (both "
                                         "checkpoints' in joint mode)")
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
    joint = args.mode == "joint"
    if args.flow_resume_path and not joint:
        parser.error("--flow_resume_path is for --mode joint (with --mode rgb or flow, give the checkpoint as "
                     "--resume_path)")
    if joint and not args.flow_resume_path:
        parser.error("--mode joint needs --flow_resume_path, the checkpoint of the flow model (--resume_path is "
                     "the RGB model)")
    models = [_load_model(args.resume_path, "rgb" if joint else args.mode, args, engine_module)]
    if joint:
        models.append(_load_model(args.flow_resume_path, "flow", args, engine_module))
        (_, _, rgb_names), (_, _, flow_names) = models
        if rgb_names != flow_names:
            raise SystemExit(f"cannot predict: {args.resume_path} and {args.flow_resume_path} have different "
                             f"classes ({len(rgb_names)}: {rgb_names[:5]}{' ...' * (len(rgb_names) > 5)} vs "
                             f"{len(flow_names)}: {flow_names[:5]}{' ...' * (len(flow_names) > 5)})")
    config, _, class_names = models[0]
    scorer = VideoScorer([(model_config, predict) for model_config, predict, _ in models])
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
        stream_probs = [metrics.softmax(stream["logits"]).mean(0) for stream in scored]
        if joint:
            (rgb, flow), (rgb_probs, flow_probs) = scored, stream_probs
            _, probs = fused(rgb["logits"].mean(0), rgb_probs, flow["logits"].mean(0), flow_probs, args.fusion)
            windows = f"rgb {len(rgb['windows'])} windows, flow {len(flow['windows'])} windows"
        else:
            probs, windows = stream_probs[0], f"{len(scored[0]['windows'])} windows"
        key = _video_key(path)
        results[key] = probs
        top = np.argsort(-probs, kind="stable")[:min(top_k, len(class_names))]
        print(f"{key}: " + ", ".join(f"{class_names[c]} {probs[c]:.4f}" for c in top) + f"  ({windows})")
        if args.timeline:
            write_timeline(args.timeline, _timeline_name(path, used_names), key, scored, class_names, top_k,
                           args.fusion if joint else None)
    if args.output:
        write_results(args.output, results, class_names, top_k)
    if failed:
        print(f"{len(failed)} of {len(videos) + len(missing)} inputs failed: "
              + "; ".join(f"{path} ({reason})" for path, reason in failed), file=sys.stderr)
        raise SystemExit(1)
    if not videos:
        raise SystemExit("no video files found in " + " ".join(args.inputs))
    return results
