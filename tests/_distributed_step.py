"""One epoch of training steps with BatchNorm on its running statistics, in every process of a launch.

    python tests/_distributed_step.py FRAMEWORK CONFIG OUT.npz
    torchrun --standalone --nproc_per_node 2 tests/_distributed_step.py torch CONFIG OUT.npz
    (or under python -m paddle.distributed.launch / msrun)

With BatchNorm in eval mode a process's gradient does not depend on how the batch is split, so
N processes with batch B must end the epoch with the weights of one process with batch N x B.
The first process writes the weights, the summed loss and how far the weights moved to OUT.npz.
"""
import importlib
import sys

import numpy as np

from core.config import load_config
from core.datasets import training_set
from core.loader import BatchLoader
from core.training import writes

ENGINES = {"torch": "TorchEngine", "paddle": "PaddleEngine", "mindspore": "MindSporeEngine"}


def train_one_epoch(framework, config_path):
    """{weights..., loss_sum, n_samples, steps, moved} after epoch 1, or None in a process other than the first."""
    config = load_config(config_path, (), ())
    engine = getattr(importlib.import_module(f"backends.{framework}.engine"), ENGINES[framework])(config)
    loader = BatchLoader(training_set(config), config["batch_size"], shuffle=True, seed=config["manual_seed"],
                         rank=engine.rank, world_size=engine.world_size)
    to_numpy_state = importlib.import_module(f"backends.{framework}.weights").to_numpy_state
    initial = to_numpy_state(engine.model)
    engine.set_lr(config["learning_rate"])
    engine.begin_epoch(1, False)
    loader.set_epoch(1)
    loss_sum = n_samples = 0
    for x, y in loader:
        loss, _ = engine.train_batch(x, y)
        loss_sum, n_samples = loss_sum + loss * len(y), n_samples + len(y)
    loss_sum, n_samples = engine.all_reduce_sum([loss_sum, n_samples])
    engine.finish()
    if not writes(engine):
        return None
    state = to_numpy_state(engine.model)
    moved = max(np.abs(state[name] - initial[name]).max() for name in state)
    return {**state, "loss_sum": loss_sum, "n_samples": n_samples, "steps": len(loader), "moved": moved}


if __name__ == "__main__":
    framework, config_path, out = sys.argv[1:4]
    if framework == "mindspore":
        import mindspore  # noqa: F401  (before torch or paddle)
    result = train_one_epoch(framework, config_path)
    if result is not None:
        np.savez(out, **result)
