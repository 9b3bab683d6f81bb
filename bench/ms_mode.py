"""MindSpore PyNative vs graph mode (`ms_mode`) on one training step of a small 3D ResNet-18.

    python -m bench.ms_mode [--steps 5] [--warmup 1] [--batch 4] [--size 56] [--frames 8] [--width 0.25]

Times MindSporeEngine.train_batch (forward, backward, SGD update) on random clips after warm-up
steps; the first step (graph mode compiles there) is reported apart. Writes bench/results/ms_mode.json
with the seconds per step of each mode and graph_speedup = pynative / graph.
"""
import argparse
import time

import mindspore as ms
import numpy as np

from backends.mindspore.engine import MindSporeEngine
from bench.common import write_result
from core.config import load_config


def time_mode(mode, args, x, y):
    config = load_config(None, [f"ms_mode={mode}", "device=cpu", "model_depth=18", "n_classes=10",
                                f"resnet_widen_factor={args.width}", f"sample_size={args.size}",
                                f"sample_duration={args.frames}"], ())
    engine = MindSporeEngine(config)
    engine.begin_epoch(1, True)
    started = time.perf_counter()
    engine.train_batch(x, y)
    first = time.perf_counter() - started
    for _ in range(args.warmup):
        engine.train_batch(x, y)
    started = time.perf_counter()
    for _ in range(args.steps):
        engine.train_batch(x, y)
    return {"first_step_s": round(first, 3), "step_s": round((time.perf_counter() - started) / args.steps, 4)}


def main():
    parser = argparse.ArgumentParser(prog="python -m bench.ms_mode", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=5, help="timed steps per mode")
    parser.add_argument("--warmup", type=int, default=1, help="untimed steps after the first")
    parser.add_argument("--batch", type=int, default=4, help="clips per step")
    parser.add_argument("--size", type=int, default=56, help="clip height and width")
    parser.add_argument("--frames", type=int, default=8, help="clip length")
    parser.add_argument("--width", type=float, default=0.25, help="resnet_widen_factor")
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    x = rng.normal(size=(args.batch, 3, args.frames, args.size, args.size)).astype(np.float32)
    y = rng.integers(0, 10, args.batch)
    modes = {mode: time_mode(mode, args, x, y) for mode in ("pynative", "graph")}
    write_result("ms_mode", {"settings": vars(args), "mindspore": ms.__version__,
                             "device": ms.get_context("device_target"), **modes,
                             "graph_speedup": round(modes["pynative"]["step_s"] / modes["graph"]["step_s"], 2)})


if __name__ == "__main__":
    main()
