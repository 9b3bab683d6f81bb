"""Classifying video files: predict (decode + score) against extract_frames + evaluate, videos per second.

    python -m bench.predict [--repeats 3]

The test list of the synthetic set (core.synthetic, 128 px, 48 frames, 20 videos in avi, mp4, mkv
and webm) with the configs/synthetic.yaml model (the demo's narrow ResNet-10, 48 px clips, two
16-frame windows per video) and seeded random weights, in PyTorch on the CPU. The baseline is what
classifying new files took before predict: core.extract_frames of those videos (2 workers, JPEG
quality 95, sizes kept) into a fresh folder, then core.evaluation.evaluate on the frames (n_threads
workers, as configured). Ours is core.predict's VideoScorer over the files, as predict runs it (n_threads
decoding threads ahead of the model, one process). Both
compute the same windows and scores (up to the JPEG round trip).
"""
import argparse
import json
import os
import shutil
import statistics
import sys
import tempfile
import time

import numpy as np

from bench.common import synthetic_dataset, write_result

DATA = os.path.join(os.path.dirname(os.path.abspath(__file__)), "data")
CONFIG = os.path.join(os.path.dirname(DATA), os.pardir, "configs", "synthetic.yaml")


def test_videos(root):
    """The synthetic set's test-list videos, copied to root/test_videos/<class>/ (the files to classify)."""
    videos = synthetic_dataset(os.path.join(DATA, "synthetic"))
    target = os.path.join(root, "test_videos")
    with open(os.path.join(DATA, "synthetic", "splits", "testlist01.txt")) as f:
        for line in f.read().split():
            os.makedirs(os.path.join(target, os.path.dirname(line)), exist_ok=True)
            shutil.copy(os.path.join(videos, line), os.path.join(target, line))
    return target


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m bench.predict", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=3, help="timed runs of each (after a warm-up)")
    args = parser.parse_args(argv)
    from backends.torch.engine import Engine, build_predictor
    from core.annotations import ucf101, write_json
    from core.config import load_config
    from core.evaluation import evaluate
    from core.extract_frames import extract_dataset
    from core.metrics import softmax
    from core.predict import VideoScorer, find_videos
    from core.training import LRSchedule, checkpoint_meta

    with tempfile.TemporaryDirectory() as root:
        videos = test_videos(root)
        files, _ = find_videos([videos])
        # The config names the demo's data; predict reads none ("key=" restores the default, None).
        config = load_config(CONFIG, ["video_path=", "annotation_path=", f"result_path={root}/results", "device=cpu"],
                             require_paths=())
        engine = Engine(config)
        checkpoint = os.path.join(root, "save_0.pth")
        engine.save(checkpoint, checkpoint_meta(config, 0, LRSchedule(config)))
        predict = build_predictor(load_config(CONFIG, ["video_path=", "annotation_path=", f"resume_path={checkpoint}",
                                                       "device=cpu"], require_paths=()))
        baseline, ours = [], []
        for run in range(args.repeats + 1):  # the first run warms up
            frames = os.path.join(root, f"frames{run}")
            start = time.perf_counter()
            extract_dataset(videos, frames, size=0, workers=2)
            annotation = os.path.join(root, f"annotation{run}.json")
            write_json(ucf101(os.path.join(DATA, "synthetic", "splits"), frames, 1), annotation)
            evaluation_config = load_config(CONFIG, [f"video_path={frames}", f"annotation_path={annotation}",
                                                     f"result_path={root}/results", "device=cpu"])
            evaluated, _ = evaluate(evaluation_config, predict, log=lambda line: None)
            baseline.append(time.perf_counter() - start)
            scorer = VideoScorer([(config, predict)])
            start = time.perf_counter()
            predicted = {os.path.splitext(os.path.basename(path))[0]: scored[0]["logits"]
                         for path, scored in scorer.score_all(files, config["n_threads"])}
            ours.append(time.perf_counter() - start)
            print(f"run {run}: extract + evaluate {baseline[-1]:.2f} s, predict {ours[-1]:.2f} s", file=sys.stderr)
    # The JPEG round trip: the same windows' scores from the decoded video and from its JPEG frames.
    rows = [evaluated.video_ids.index(video) for video in predicted]
    logits = np.stack([predicted[video].mean(0) for video in predicted])
    probs = np.stack([softmax(predicted[video]).mean(0) for video in predicted])
    jpeg = {"max_abs_probability": float(np.abs(probs - evaluated.probs[rows]).max()),
            "max_abs_logit": float(np.abs(logits - evaluated.logits[rows]).max()),
            "logit_range": float(np.abs(evaluated.logits).max()),
            "same_top1": int((probs.argmax(1) == evaluated.probs[rows].argmax(1)).sum())}
    rates = {name: [len(files) / s for s in seconds[1:]] for name, seconds in (("baseline", baseline), ("ours", ours))}
    medians = {name: statistics.median(values) for name, values in rates.items()}
    write_result("predict", {
        "videos": len(files), "config": "configs/synthetic.yaml (torch, CPU)", "repeats": args.repeats,
        "extract_frames_plus_evaluate_videos_per_second": medians["baseline"],
        "predict_videos_per_second": medians["ours"], "ratio": medians["ours"] / medians["baseline"],
        "runs": {name: [round(r, 2) for r in values] for name, values in rates.items()},
        "predict_vs_evaluate_on_jpeg_frames": jpeg})
    print(json.dumps(medians))


if __name__ == "__main__":
    main()
