"""MindSpore PyNative vs graph mode (`ms_mode`) on the demo's model (configs/synthetic.yaml).

    python -m bench.ms_mode [--steps 5] [--warmup 1] [--batch 16]

Times backends.mindspore.engine.Engine.train_batch (forward, backward, SGD update) and eval_batch on random
clips of the configs/synthetic.yaml model and clip size (3D ResNet-10 at width 0.25) after
warm-up steps; the first step (graph mode compiles there) is reported apart. Each timing ends
by reading a parameter back: launches may be asynchronous, and the loss can be ready before
the optimizer update is done. Writes bench/results/ms_mode.json with the seconds per step of
each mode and graph_speedup = pynative / graph (below 1: PyNative is faster).
"""
import argparse
import os
import time

import mindspore as ms
import numpy as np

from backends.mindspore.engine import Engine
from bench.common import write_result
from core.config import load_config

CONFIG = os.path.join(os.path.dirname(os.path.abspath(__file__)), os.pardir, "configs", "synthetic.yaml")


def seconds_per_step(step, steps, sync):
    started = time.perf_counter()
    for _ in range(steps):
        step()
    sync()
    return round((time.perf_counter() - started) / steps, 4)


def random_batch(config, batch):
    """Seeded random clips of the config's size and labels of its classes."""
    rng = np.random.default_rng(0)
    size = config["sample_size"]
    x = rng.normal(size=(batch, 3, config["sample_duration"], size, size)).astype(np.float32)
    return x, rng.integers(0, config["n_classes"], batch)


def time_mode(mode, args):
    # The clips are random: the config's data paths are cleared, so the demo's data need not exist.
    config = load_config(CONFIG, [f"ms_mode={mode}", "device=cpu", "video_path=", "annotation_path="], ())
    engine = Engine(config)
    x, y = random_batch(config, args.batch)
    sync = engine.model.fc.weight.asnumpy

    def train():
        engine.train_batch(x, y)

    def evaluate():
        engine.eval_batch(x, y)

    engine.begin_epoch(1, True)
    first = seconds_per_step(train, 1, sync)
    seconds_per_step(train, args.warmup, sync)
    train_s = seconds_per_step(train, args.steps, sync)
    engine.begin_epoch(1, False)
    seconds_per_step(evaluate, args.warmup, sync)
    return {"first_step_s": first, "step_s": train_s, "eval_step_s": seconds_per_step(evaluate, args.steps, sync)}


def main():
    parser = argparse.ArgumentParser(prog="python -m bench.ms_mode", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=5, help="timed steps per mode")
    parser.add_argument("--warmup", type=int, default=1, help="untimed steps after the first")
    parser.add_argument("--batch", type=int, default=16, help="clips per step (the demo's batch_size: 16)")
    args = parser.parse_args()
    modes = {mode: time_mode(mode, args) for mode in ("pynative", "graph")}
    write_result("ms_mode", {"settings": {**vars(args), "config": "configs/synthetic.yaml"},
                             "mindspore": ms.__version__, "device": ms.get_context("device_target"), **modes,
                             "graph_speedup": round(modes["pynative"]["step_s"] / modes["graph"]["step_s"], 2)})


if __name__ == "__main__":
    main()
