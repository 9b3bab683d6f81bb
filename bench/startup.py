"""Start-up of training: seconds from `python -m backends.<fw>.train` to its first training line, per backend.

    python -m bench.startup [--repeats 3] [--baseline REV] [--backends torch paddle mindspore]

Runs `python -m backends.<fw>.train --config configs/synthetic.yaml` on the demo's data (core.synthetic's
defaults: 5 classes x 120 videos, 48 px, 32 frames; frames and annotation made once under bench/data/startup)
and stops it once the model is built. It records, from the process start, when stdout shows
- `first_line`: the first line naming the training run (`[<fw>] training ...`);
- `ready`: the `[<fw>] weights:` line, printed once the framework is imported and the model and optimizer are
  built (what precedes the first step).
The baseline is the same command in REV (default: the commit before the start-up work) exported with `git
archive` to a temporary folder, run interleaved with ours, `--repeats` times each (PYTHONUNBUFFERED=1 for
both, as a terminal shows lines). Also recorded, from `python -X importtime` in this tree: the cumulative
import time of core.cli (framework-free) and of the backend's engine module (the framework).
"""
import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time

from backends import BACKENDS
from bench.common import synthetic_dataset, write_result

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
DATA = os.path.join(HERE, "data", "startup")
BASELINE = "f7b8c09"  # the last commit before the start-up work (issue 16)


def demo_data():
    """(frames root, annotation JSON) of the demo's synthetic set, made once."""
    videos = synthetic_dataset(os.path.join(DATA, "synthetic"), size=48, frames=32, videos_per_class=120)
    frames, annotations = os.path.join(DATA, "frames"), os.path.join(DATA, "annotations")
    if not os.path.isfile(os.path.join(annotations, "ucf101_01.json")):
        for module, *args in (("core.extract_frames", videos, frames, "--workers", "2"),
                              ("core.annotations", "ucf101", os.path.join(DATA, "synthetic", "splits"), frames,
                               annotations)):
            subprocess.run([sys.executable, "-m", module, *args], cwd=ROOT, check=True, stdout=subprocess.DEVNULL,
                           stderr=subprocess.DEVNULL)
    return frames, os.path.join(annotations, "ucf101_01.json")


def time_to_lines(tree, framework, frames, annotation, result_path):
    """{"first_line", "ready"}: seconds from the start of the training process to those stdout lines."""
    command = [sys.executable, "-m", f"backends.{framework}.train", "--config", "configs/synthetic.yaml",
               "--set", f"video_path={frames}", "--set", f"annotation_path={annotation}",
               "--set", f"result_path={result_path}", "--set", "device=cpu"]
    env = dict(os.environ, PYTHONPATH=tree, PYTHONUNBUFFERED="1")
    start = time.perf_counter()
    process = subprocess.Popen(command, cwd=tree, env=env, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                               text=True)
    seen = {}
    try:
        for line in process.stdout:
            now = time.perf_counter() - start
            if line.startswith(f"[{framework}] training") and "first_line" not in seen:
                seen["first_line"] = now
            if line.startswith(f"[{framework}] weights:"):
                seen["ready"] = now
                break
    finally:
        process.kill()
        process.wait()
    if set(seen) != {"first_line", "ready"}:
        raise RuntimeError(f"{framework} in {tree}: training printed {sorted(seen)} of its first lines")
    return seen


def import_seconds(framework):
    """Cumulative import seconds (python -X importtime) of core.cli and of backends.<fw>.engine in this tree."""
    done = subprocess.run([sys.executable, "-X", "importtime", "-c", f"import core.cli, backends.{framework}.engine"],
                          cwd=ROOT, env=dict(os.environ, PYTHONPATH=ROOT), capture_output=True, text=True, check=True)
    cumulative = {}
    for line in done.stderr.splitlines():
        fields = [field.strip() for field in line.split("|")]
        if len(fields) == 3 and fields[1].isdigit():
            cumulative[fields[2]] = int(fields[1]) / 1e6
    return {"core.cli": cumulative["core.cli"], f"backends.{framework}.engine": cumulative[f"backends.{framework}.engine"]}


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m bench.startup", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=3, help="timed runs of each, interleaved")
    parser.add_argument("--baseline", default=BASELINE, help="git revision of the baseline")
    parser.add_argument("--backends", nargs="+", default=list(BACKENDS), choices=BACKENDS)
    args = parser.parse_args(argv)
    frames, annotation = demo_data()
    result = {"config": "configs/synthetic.yaml on the demo's data (5 x 120 videos, 48 px)", "repeats": args.repeats,
              "baseline": args.baseline, "backends": {}}
    with tempfile.TemporaryDirectory() as scratch:
        baseline_tree = os.path.join(scratch, "baseline")
        os.makedirs(baseline_tree)
        archive = subprocess.run(["git", "archive", args.baseline], cwd=ROOT, capture_output=True, check=True).stdout
        subprocess.run(["tar", "-x", "-C", baseline_tree], input=archive, check=True)
        for framework in args.backends:
            runs = {"baseline": [], "ours": []}
            for repeat in range(args.repeats + 1):  # the first round warms the file cache
                for name, tree in (("baseline", baseline_tree), ("ours", ROOT)):
                    seconds = time_to_lines(tree, framework, frames, annotation, os.path.join(scratch, name))
                    if repeat:
                        runs[name].append(seconds)
                    print(f"{framework} {name}: first line {seconds['first_line']:.2f} s, ready "
                          f"{seconds['ready']:.2f} s", file=sys.stderr)
            result["backends"][framework] = {
                name: {key: statistics.median(run[key] for run in values) for key in ("first_line", "ready")}
                for name, values in runs.items()}
            result["backends"][framework]["runs"] = {name: [{key: round(value, 2) for key, value in run.items()}
                                                            for run in values] for name, values in runs.items()}
            result["backends"][framework]["import_seconds"] = import_seconds(framework)
    write_result("startup", result)


if __name__ == "__main__":
    main()
