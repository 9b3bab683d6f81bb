"""Training step: our loop (engine.train_batch via core.training) vs a bare loop, per framework.

    python -m bench.training_step [--frameworks torch paddle mindspore] [--rounds 3] [--steps 1]

For each framework (each in its own process) and model, on one in-memory batch
of 8 clips of 3 x 16 x 112 x 112:
- ours: the backend's Engine, stepped by core.training's epoch loop
  (_run_epoch, which fit() calls) over a loader that yields that batch;
- bare: the same model and SGD settings in a plain loop: forward, cross
  entropy, backward, optimizer step, loss to a Python float.
Warm-up steps first, then --rounds rounds of --steps steps of each, interleaved;
the median per-step time is reported. Goal: ours costs at most 5% over bare.

Models: resnet18 (full width in torch and Paddle only, to keep the run short: it
was the slowest MindSpore step by far before its CPU settings), resnet18 at
width 0.25 in all three, and I3D at width 0.25.
"""
import argparse
import json
import statistics
import sys
import time

import numpy as np

from backends import BACKENDS, load
from bench.common import run_module, write_result

FRAMEWORKS = BACKENDS
MODELS = {"resnet18": ["model=resnet", "model_depth=18"],
          "resnet18_w0.25": ["model=resnet", "model_depth=18", "resnet_widen_factor=0.25"],
          "i3d_w0.25": ["model=i3d", "resnet_widen_factor=0.25"]}
SKIP = {("mindspore", "resnet18")}
BATCH, CLIP = 8, (3, 16, 112, 112)
N_CLASSES = 10


class RepeatedBatch:
    """A loader for core.training's epoch loop: the same batch `steps` times."""

    def __init__(self, x, y, steps):
        self.x, self.y, self.steps = x, y, steps

    def set_epoch(self, epoch):
        pass

    def __len__(self):
        return self.steps

    def __iter__(self):
        return iter([(self.x, self.y)] * self.steps)


def bare_step(framework, config):
    """A function running one plain training step of a fresh model, and the model's framework."""
    from core.archs import arch_name, model_kwargs
    lr, momentum, decay = config.learning_rate, config.momentum, config.weight_decay
    if framework == "torch":
        import torch
        import torch.nn.functional as F
        from backends.torch.models import build_model
        model = build_model(arch_name(config), **model_kwargs(config)).train()
        optimizer = torch.optim.SGD(model.parameters(), lr=lr, momentum=momentum, weight_decay=decay)

        def step(x, y):
            optimizer.zero_grad()
            loss = F.cross_entropy(model(x), y)
            loss.backward()
            optimizer.step()
            return loss.item()
        return step, torch.from_numpy
    if framework == "paddle":
        import paddle
        import paddle.nn.functional as F
        from backends.paddle.models import build_model
        model = build_model(arch_name(config), **model_kwargs(config))
        model.train()
        optimizer = paddle.optimizer.Momentum(lr, momentum, parameters=model.parameters(), weight_decay=decay)

        def step(x, y):
            loss = F.cross_entropy(model(x), y)
            loss.backward()
            optimizer.step()
            optimizer.clear_grad()
            return float(loss)
        return step, paddle.to_tensor
    import mindspore as ms
    from mindspore import nn, ops
    from backends.mindspore.models import build_model
    model = build_model(arch_name(config), **model_kwargs(config))
    model.set_train(True)
    optimizer = nn.SGD([{"params": model.trainable_params(), "weight_decay": decay}], learning_rate=lr,
                       momentum=momentum)
    grad_fn = ms.value_and_grad(lambda x, y: ops.cross_entropy(model(x), y), None, optimizer.parameters)

    def step(x, y):
        loss, grads = grad_fn(x, y)
        optimizer(grads)
        return float(loss.asnumpy())
    return step, lambda a: ms.Tensor(a.astype(np.int32) if a.dtype == np.int64 else a)


def worker(framework, rounds, steps, warmup):
    from core.config import load_config
    from core.training import _run_epoch
    engine_class = load(framework, "engine").Engine
    rng = np.random.default_rng(0)
    x = rng.standard_normal((BATCH,) + CLIP, dtype=np.float32)
    y = rng.integers(0, N_CLASSES, BATCH)
    results = {}
    for name, keys in MODELS.items():
        if (framework, name) in SKIP:
            continue
        config = load_config(None, keys + [f"n_classes={N_CLASSES}", "device=cpu", "learning_rate=0.01",
                                           f"sample_size={CLIP[2]}", f"sample_duration={CLIP[1]}"], require_paths=())
        engine = engine_class(config)
        step, to_tensor = bare_step(framework, config)
        xt, yt = to_tensor(x), to_tensor(y)
        ours = lambda n: _run_epoch(engine, RepeatedBatch(x, y, n), 1, True, "ours")
        bare = lambda n: [step(xt, yt) for _ in range(n)]
        ours(warmup)
        bare(warmup)
        seconds = {"ours": [], "bare": []}
        for _ in range(rounds):
            for route, run in (("ours", ours), ("bare", bare)):
                start = time.perf_counter()
                run(steps)
                seconds[route].append((time.perf_counter() - start) / steps)
        step_s = {route: statistics.median(s) for route, s in seconds.items()}
        results[name] = {"seconds_per_step": step_s, "runs": seconds,
                         "clips_per_second": {route: BATCH / s for route, s in step_s.items()},
                         "overhead_ours_over_bare": step_s["ours"] / step_s["bare"] - 1}
        print(f"[{framework}] {name}: {json.dumps(results[name]['seconds_per_step'])}", file=sys.stderr)
    print(json.dumps(results))


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m bench.training_step", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--frameworks", nargs="+", choices=FRAMEWORKS, default=FRAMEWORKS)
    parser.add_argument("--rounds", type=int, default=3, help="timed rounds of each loop")
    parser.add_argument("--steps", type=int, default=1, help="steps per round")
    parser.add_argument("--warmup", type=int, default=1, help="untimed steps of each loop first")
    parser.add_argument("--worker", choices=FRAMEWORKS, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker:
        return worker(args.worker, args.rounds, args.steps, args.warmup)
    per_framework = {fw: run_module("bench.training_step", "--worker", fw, "--rounds", args.rounds,
                                    "--steps", args.steps, "--warmup", args.warmup) for fw in args.frameworks}
    across = {}
    for name in MODELS:
        rates = {fw: r[name]["clips_per_second"]["ours"] for fw, r in per_framework.items() if name in r}
        if "torch" in rates:
            across[name] = {fw: rate / rates["torch"] for fw, rate in rates.items()}
    write_result("training_step", {
        "batch": BATCH, "clip": list(CLIP), "rounds": args.rounds, "steps_per_round": args.steps,
        "goal": "ours at most 5% over the bare loop", "frameworks": per_framework,
        "ours_clips_per_second_relative_to_torch": across,
        "note": "MindSpore skips full-width resnet18 (to keep the run short)"})


if __name__ == "__main__":
    main()
