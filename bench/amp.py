"""Mixed precision: torch train-step throughput with and without `amp`, on a GPU.

    python -m bench.amp [--batch 8] [--rounds 3] [--steps 10]

The engine's train_batch (autocast + GradScaler with amp: true, float32 without) on one in-memory batch
of random clips, per model: resnet18 and resnet50 at 3 x 16 x 112 x 112, I3D at 3 x 16 x 224 x 224.
Warm-up steps first, then --rounds rounds of --steps steps of each setting, interleaved; the median
clips/s is reported with the device's name. Without a GPU there is nothing to measure: amp is GPU-only
in every backend (the engine trains in float32 and says so), and the result file says that.
"""
import argparse
import statistics
import time

import numpy as np
import torch

from bench.common import write_result

MODELS = {"resnet18": (["model=resnet", "model_depth=18"], 112),
          "resnet50": (["model=resnet", "model_depth=50"], 112),
          "i3d": (["model=i3d"], 224)}
FRAMES, N_CLASSES = 16, 400


def clips_per_second(engine, x, y, rounds, steps):
    def run():
        start = time.perf_counter()
        for _ in range(steps):
            engine.train_batch(x, y)
        torch.cuda.synchronize()
        return len(x) * steps / (time.perf_counter() - start)
    return [run() for _ in range(rounds)]


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m bench.amp", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--batch", type=int, default=8, help="clips per step")
    parser.add_argument("--rounds", type=int, default=3, help="timed rounds of each setting")
    parser.add_argument("--steps", type=int, default=10, help="steps per round")
    parser.add_argument("--warmup", type=int, default=3, help="untimed steps of each setting first")
    args = parser.parse_args(argv)
    if not torch.cuda.is_available():
        write_result("amp", {"device": "cpu", "note": "amp is GPU-only in every backend (torch autocast + "
                             "GradScaler, Paddle auto_cast, MindSpore O2 on GPU/Ascend): nothing to measure on CPU"})
        return
    from backends.torch.engine import Engine
    from core.config import load_config
    rng = np.random.default_rng(0)
    results = {}
    for name, (keys, size) in MODELS.items():
        x = rng.standard_normal((args.batch, 3, FRAMES, size, size), dtype=np.float32)
        y = rng.integers(0, N_CLASSES, args.batch)
        engines = {}
        for amp in (False, True):
            config = load_config(None, keys + [f"n_classes={N_CLASSES}", "device=gpu", f"amp={amp}",
                                               f"sample_size={size}", f"sample_duration={FRAMES}"], require_paths=())
            engines[amp] = Engine(config)
            engines[amp].begin_epoch(1, True)
            clips_per_second(engines[amp], x, y, 1, args.warmup)
        runs = {amp: [] for amp in engines}
        for _ in range(args.rounds):
            for amp, engine in engines.items():
                runs[amp] += clips_per_second(engine, x, y, 1, args.steps)
        rate = {amp: statistics.median(r) for amp, r in runs.items()}
        results[name] = {"clip": [3, FRAMES, size, size], "clips_per_second_float32": rate[False],
                         "clips_per_second_amp": rate[True], "amp_speedup": rate[True] / rate[False],
                         "runs": {"float32": runs[False], "amp": runs[True]}}
        del engines
        torch.cuda.empty_cache()
    write_result("amp", {"device": torch.cuda.get_device_name(), "torch": torch.__version__, "batch": args.batch,
                         "steps_per_round": args.steps, "rounds": args.rounds, "models": results})


if __name__ == "__main__":
    main()
