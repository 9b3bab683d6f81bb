"""MindSpore on CPU with oneDNN's full instruction set vs capped at AVX2 (backends/mindspore/__init__.py).

    python -m bench.ms_isa [--steps 3] [--batch 4] [--size 56] [--frames 16] [--width 0.25]

Each setting runs in its own process (oneDNN reads ONEDNN_MAX_CPU_ISA once) and times
backends.mindspore.engine.Engine.train_batch of a small 3D ResNet-18 after one warm-up step, as bench.ms_mode
does (each timing ends by reading a weight back). Writes bench/results/ms_isa.json with the
seconds per step and speedup = all / AVX2.
"""
import argparse
import json
import os
import subprocess
import sys

from bench.common import write_result

SETTINGS = {"all": "ALL", "avx2": "AVX2"}


def time_steps(args):
    from backends.mindspore.engine import Engine
    from bench.ms_mode import random_batch, seconds_per_step
    from core.config import load_config
    config = load_config(None, ["device=cpu", "model_depth=18", "n_classes=10", f"resnet_widen_factor={args.width}",
                                f"sample_size={args.size}", f"sample_duration={args.frames}"], ())
    engine = Engine(config)
    engine.begin_epoch(1, True)
    x, y = random_batch(config, args.batch)
    sync = engine.model.fc.weight.asnumpy

    def train():
        engine.train_batch(x, y)

    seconds_per_step(train, 1, sync)
    return seconds_per_step(train, args.steps, sync)


def main():
    parser = argparse.ArgumentParser(prog="python -m bench.ms_isa", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=3, help="timed steps per setting")
    parser.add_argument("--batch", type=int, default=4, help="clips per step")
    parser.add_argument("--size", type=int, default=56, help="clip height and width")
    parser.add_argument("--frames", type=int, default=16, help="clip length")
    parser.add_argument("--width", type=float, default=0.25, help="resnet_widen_factor")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(time_steps(args)))
        return
    step_s = {}
    for name, isa in SETTINGS.items():
        done = subprocess.run([sys.executable, "-m", "bench.ms_isa", "--child"] + sys.argv[1:], check=True,
                              env={**os.environ, "ONEDNN_MAX_CPU_ISA": isa}, capture_output=True, text=True)
        step_s[name] = json.loads(done.stdout.strip().splitlines()[-1])
    write_result("ms_isa", {"settings": {k: v for k, v in vars(args).items() if k != "child"},
                            "onednn_max_cpu_isa": SETTINGS, "step_s": step_s,
                            "speedup": round(step_s["all"] / step_s["avx2"], 1)})


if __name__ == "__main__":
    main()
