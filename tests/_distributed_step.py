"""Code that runs in every process of a launch, for tests/test_distributed.py.

    python tests/_distributed_step.py step FRAMEWORK CONFIG OUT.npz
    python tests/_distributed_step.py train FRAMEWORK RESULT_DIR --config CONFIG [--set key=value ...]
    torchrun --standalone --nproc_per_node 2 tests/_distributed_step.py ...
    (or under python -m paddle.distributed.launch / msrun)

step: one epoch of training steps with BatchNorm on its running statistics, then one validation pass.
With BatchNorm in eval mode a process's gradient does not depend on how the batch is split, so N
processes with batch B must end the epoch with the weights of one process with batch N x B, and
validate every clip once, as one process does. The first process writes the weights, the summed
losses, the sample counts and how far the weights moved to OUT.npz.

train: the backend's training CLI (core.cli.train_main) with every file this process opens for
writing or renames under RESULT_DIR noted in RESULT_DIR.writes.<rank>, so that a test sees which
process wrote what: the checkpoints' temporary names differ per process, their final names do not.
"""
import builtins
import importlib
import os
import sys

import numpy as np

from backends import load
from core.config import load_config
from core.datasets import training_set, validation_set
from core.loader import BatchLoader
from core.training import writes

def engine_class(framework):
    return load(framework, "engine").Engine


def summed_loss(engine, step, loader):
    """(loss summed over the samples, number of samples) of one pass over `loader`, over all processes."""
    loss_sum = n_samples = 0
    for batch in loader:
        loss, _ = step(batch[0], batch[1])
        loss_sum, n_samples = loss_sum + loss * len(batch[1]), n_samples + len(batch[1])
    return engine.all_reduce_sum([loss_sum, n_samples])


def train_and_validate(framework, config_path):
    """{weights..., loss_sum, n_samples, steps, moved, val_loss_sum, val_samples} after epoch 1,
    or None in a process other than the first."""
    config = load_config(config_path, (), ())
    engine = engine_class(framework)(config)
    processes = dict(rank=engine.rank, world_size=engine.world_size)
    loader = BatchLoader(training_set(config), config["batch_size"], shuffle=True, seed=config["manual_seed"],
                         **processes)
    val_loader = BatchLoader(validation_set(config), config["batch_size"], equal_steps=False, **processes)
    to_numpy_state = load(framework, "interop").to_numpy_state
    initial = to_numpy_state(engine.model)
    engine.set_lr(config["learning_rate"])
    engine.begin_epoch(1, False)
    loader.set_epoch(1)
    val_loader.set_epoch(1)
    loss_sum, n_samples = summed_loss(engine, engine.train_batch, loader)
    val_loss_sum, val_samples = summed_loss(engine, engine.eval_batch, val_loader)
    engine.finish()
    if not writes(engine):
        return None
    state = to_numpy_state(engine.model)
    moved = max(np.abs(state[name] - initial[name]).max() for name in state)
    return {**state, "loss_sum": loss_sum, "n_samples": n_samples, "steps": len(loader), "moved": moved,
            "val_loss_sum": val_loss_sum, "val_samples": val_samples}


def record_writes(framework, result_dir):
    """Note in `result_dir`.writes.<rank> each file under result_dir this process opens for writing
    (logs, opts.yaml, curves.png, Paddle's checkpoint files) or renames into place (every checkpoint)."""
    result_dir = os.path.abspath(result_dir)
    rank = importlib.import_module(f"backends.{framework}.distributed").launched()[0]
    # Created, empty, at the start: an empty record shows the process ran and wrote nothing.
    record = open(f"{result_dir}.writes.{rank}", "w", buffering=1)
    real_open, real_replace = builtins.open, os.replace

    def note(action, path):
        path = os.path.abspath(os.fsdecode(path))
        if path.startswith(result_dir + os.sep):
            record.write(f"{action} {os.path.relpath(path, result_dir)}\n")

    def recording_open(file, mode="r", *args, **kwargs):
        if isinstance(file, (str, bytes, os.PathLike)) and set(mode) & set("wax+"):
            note("open", file)
        return real_open(file, mode, *args, **kwargs)

    def recording_replace(source, destination, **kwargs):
        note("replace", destination)
        real_replace(source, destination, **kwargs)

    builtins.open, os.replace = recording_open, recording_replace


if __name__ == "__main__":
    task, framework = sys.argv[1:3]
    if framework == "mindspore":
        import mindspore  # noqa: F401  (before torch or paddle)
    if task == "step":
        config_path, out = sys.argv[3:5]
        result = train_and_validate(framework, config_path)
        if result is not None:
            np.savez(out, **result)
    elif task == "train":
        from core.cli import train_main
        record_writes(framework, sys.argv[3])
        train_main(framework, f"backends.{framework}.engine", sys.argv[4:])
    else:
        sys.exit(__doc__)
