"""Video-level evaluation speed per backend: videos per second of core.evaluation.evaluate.

    python -m bench.evaluation [--frameworks torch paddle mindspore] [--repeats 3]

The synthetic set (core.synthetic, 128 px, 48 frames; 8 videos per class;
its test list, 20 videos) is extracted and annotated once; each backend, in its own process,
saves the configs/synthetic.yaml model (the demo's narrow ResNet-10 and its clips)
with seeded random weights through its engine, loads it with its
build_predictor and runs the full evaluation (sliding-window clips, data
loading with n_threads workers, val.json, scores and confusion plot).
"""
import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time

from backends import BACKENDS, load
from bench.common import run_module, synthetic_dataset, write_result

DATA = os.path.join(os.path.dirname(os.path.abspath(__file__)), "data")
FRAMEWORKS = BACKENDS
CONFIG = os.path.join(os.path.dirname(DATA), os.pardir, "configs", "synthetic.yaml")


def prepare():
    """(frames root, annotation file) of the synthetic set."""
    root = os.path.join(DATA, "synthetic")
    frames, annotations = os.path.join(root, "frames"), os.path.join(root, "annotations")
    annotation = os.path.join(annotations, "ucf101_01.json")
    if not os.path.exists(annotation):
        videos = synthetic_dataset(root)
        subprocess.run([sys.executable, "-m", "core.extract_frames", videos, frames, "--size", "0", "--workers", "2"],
                       check=True, stdout=subprocess.DEVNULL)
        subprocess.run([sys.executable, "-m", "core.annotations", "ucf101", os.path.join(root, "splits"), frames,
                        annotations], check=True, stdout=subprocess.DEVNULL)
    return frames, annotation


def worker(framework, repeats):
    from core.config import load_config
    from core.evaluation import evaluate
    from core.training import LRSchedule, checkpoint_meta
    engine_class = load(framework, "engine").Engine
    frames, annotation = prepare()
    with tempfile.TemporaryDirectory() as result_path:
        keys = [f"video_path={frames}", f"annotation_path={annotation}", f"result_path={result_path}", "device=cpu"]
        config = load_config(CONFIG, keys)
        engine = engine_class(config)
        checkpoint = os.path.join(result_path, "save_0" + engine.checkpoint_suffix)
        engine.save(checkpoint, checkpoint_meta(config, 0, LRSchedule(config)))
        config = load_config(CONFIG, keys + [f"resume_path={checkpoint}"])
        predict = load(framework, "engine").build_predictor(config)
        seconds, n_videos = [], 0
        for _ in range(repeats + 1):  # the first run warms up
            start = time.perf_counter()
            scores, _ = evaluate(config, predict, log=lambda line: print(line, file=sys.stderr))
            seconds.append(time.perf_counter() - start)
            n_videos = len(scores.video_ids)
    rates = [n_videos / s for s in seconds[1:]]
    print(json.dumps({"videos": n_videos, "videos_per_second": statistics.median(rates), "runs": rates}))


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m bench.evaluation", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--frameworks", nargs="+", choices=FRAMEWORKS, default=FRAMEWORKS)
    parser.add_argument("--repeats", type=int, default=3, help="timed evaluations per backend (after a warm-up)")
    parser.add_argument("--worker", choices=FRAMEWORKS, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker:
        return worker(args.worker, args.repeats)
    prepare()
    results = {fw: run_module("bench.evaluation", "--worker", fw, "--repeats", args.repeats) for fw in args.frameworks}
    relative = {fw: r["videos_per_second"] / results["torch"]["videos_per_second"]
                for fw, r in results.items()} if "torch" in results else {}
    write_result("evaluation", {"config": "configs/synthetic.yaml (the demo's model, clips and windows)",
                                "repeats": args.repeats, "backends": results, "relative_to_torch": relative})


if __name__ == "__main__":
    main()
