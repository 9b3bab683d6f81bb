"""The training loop every backend runs, written once.

A backend supplies an *engine* (core.engine.Engine with its framework's
primitives): one train step, one eval step, setting the learning rate,
saving and loading checkpoints. Everything else lives here: epochs, data order, the
learning-rate schedule, logs, validation, checkpoint cadence, resume and
the curves plot.

Reproducibility and resume: data order depends on (seed, epoch) and each
clip's augmentation on (seed, epoch, index) (core.loader / core.datasets);
the engine reseeds its framework's RNG (dropout) from (seed, epoch) at the
start of each epoch. So a run resumed from the checkpoint of epoch k
continues exactly as the uninterrupted run did.

Data-parallel training (docs/distributed.md): every process runs `fit` with
its share of each batch (core.loader.rank_share); the engine averages the
gradients, loss and accuracy are summed over the processes, and only the
first process (`writes`) prints, logs, saves checkpoints and plots.
"""
import csv
import math
import os
import time

import numpy as np
from tqdm import tqdm

from core.archs import arch_name
from core.config import ConfigError
from core.mixing import batch_rng, mix_batch, mixes
from core.result_path import process_alive


def writes(engine):
    """Whether this process prints, logs and saves: only the first of a data-parallel run."""
    return engine.rank == 0


class LRSchedule:
    """multistep / cosine / plateau with the reference's semantics, per epoch.

    multistep: lr * 0.1 ** (milestones passed), as torch MultiStepLR stepped
    once per epoch; cosine: annealing to 0 over n_epochs; plateau: as torch
    ReduceLROnPlateau(mode='min', factor=0.1, patience) on validation loss.
    """

    plateau_eps = 1e-8  # torch ReduceLROnPlateau's default eps: a smaller cut leaves the rate as it is

    def __init__(self, config):
        self.kind = config["lr_scheduler"]
        self.base_lr = config["learning_rate"]
        self.milestones = sorted(int(m) for m in config["multistep_milestones"])
        self.n_epochs = config["n_epochs"]
        self.patience = config["plateau_patience"]
        self.plateau_lr = self.base_lr
        self.best = math.inf
        self.bad_epochs = 0

    def lr(self, epoch):
        """Learning rate for `epoch` (1-based)."""
        if self.kind == "multistep":
            return self.base_lr * 0.1 ** sum(epoch > m for m in self.milestones)
        if self.kind == "cosine":
            return 0.5 * self.base_lr * (1 + math.cos(math.pi * (epoch - 1) / self.n_epochs))
        return self.plateau_lr

    def step(self, val_loss):
        """Called after each epoch's validation (only plateau uses it)."""
        if self.kind != "plateau" or val_loss is None:
            return
        if val_loss < self.best * (1 - 1e-4):
            self.best, self.bad_epochs = val_loss, 0
        else:
            self.bad_epochs += 1
            if self.bad_epochs > self.patience:
                if self.plateau_lr - self.plateau_lr * 0.1 > self.plateau_eps:  # torch's _reduce_lr
                    self.plateau_lr *= 0.1
                self.bad_epochs = 0

    def state_dict(self):
        return {"plateau_lr": self.plateau_lr, "best": self.best, "bad_epochs": self.bad_epochs}

    def load_state_dict(self, state):
        """Ours, or the torch scheduler's of a kenshohara checkpoint. Of his, only ReduceLROnPlateau
        carries something the epoch does not (its rate, best loss and count); MultiStepLR's rate
        follows from the epoch, which is how multistep and cosine rebuild it."""
        if "plateau_lr" in state:
            self.plateau_lr, self.best, self.bad_epochs = state["plateau_lr"], state["best"], state["bad_epochs"]
        elif "num_bad_epochs" in state:
            # `_last_lr` exists since torch 2.2; an older file restarts from the base rate.
            self.plateau_lr = state.get("_last_lr", [self.base_lr])[0]
            self.best, self.bad_epochs = state["best"], state["num_bad_epochs"]


class CSVLogger:
    """kenshohara's tab-separated train.log / val.log; on resume keeps rows up to the resumed epoch."""

    def __init__(self, path, header, resume_epoch=0):
        self.path, self.header = path, list(header)
        rows = read_log(path) if resume_epoch and os.path.exists(path) else []
        rows = [r for r in rows if int(r["epoch"]) <= resume_epoch]
        with open(path, "w", newline="") as f:
            writer = csv.DictWriter(f, self.header, delimiter="\t")
            writer.writeheader()
            writer.writerows(rows)

    def log(self, values):
        with open(self.path, "a", newline="") as f:
            csv.DictWriter(f, self.header, delimiter="\t").writerow(values)


def read_log(path):
    with open(path, newline="") as f:
        return list(csv.DictReader(f, delimiter="\t"))


# Drawing curves.png costs ~0.3 s of the training process: redrawn after an epoch only once this many seconds
# passed since the last drawing (every epoch of a real run; short epochs would spend a quarter of their time
# drawing), and always after the last epoch.
CURVES_EVERY_S = 30


def plot_curves(result_path):
    """curves.png: loss, accuracy and learning rate per epoch from train.log / val.log."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    logs = {name: read_log(os.path.join(result_path, f"{name}.log"))
            for name in ("train", "val") if os.path.exists(os.path.join(result_path, f"{name}.log"))}
    fig, axes = plt.subplots(1, 3, figsize=(13, 3.6))
    for name, rows in logs.items():
        epochs = [int(r["epoch"]) for r in rows]
        axes[0].plot(epochs, [float(r["loss"]) for r in rows], marker="o", label=name)
        axes[1].plot(epochs, [float(r["acc"]) for r in rows], marker="o", label=name)
        if name == "train":
            axes[2].plot(epochs, [float(r["lr"]) for r in rows], marker="o")
    for ax, title in zip(axes, ("loss", "clip accuracy", "learning rate")):
        ax.set_title(title)
        ax.set_xlabel("epoch")
    axes[0].legend()
    axes[1].legend()
    fig.tight_layout()
    path = os.path.join(result_path, "curves.png")
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return path


def replace_atomically(path, write):
    """Call write(tmp_path), then rename over `path`: a crash never leaves a half-written file. Whatever
    write raises propagates as it is (the exporters' compile errors); the temporary file never stays."""
    directory = os.path.dirname(os.path.abspath(path))
    os.makedirs(directory, exist_ok=True)
    # The temporary name keeps the extension: some savers (MindSpore) append theirs otherwise.
    tmp = os.path.join(directory, f".tmp{os.getpid()}.{os.path.basename(path)}")
    try:
        write(tmp)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)


def atomic_write(path, write):
    """replace_atomically for checkpoints and results: a write that fails (a full disk, a quota) leaves `path`
    as it was and raises CheckpointWriteError, a one-line message naming the file.
    """
    from core.result_path import CheckpointWriteError
    try:
        replace_atomically(path, write)
    except (OSError, RuntimeError) as error:  # torch's and MindSpore's writers raise RuntimeError
        reason = (os.strerror(error.errno) if getattr(error, "errno", None)
                  else f"{str(error).strip().splitlines()[-1]}: is the disk full?")
        raise CheckpointWriteError(f"cannot write {path} ({reason}); it is left as it was, and earlier "
                                   "checkpoints are untouched") from None


def remove_stale_temporaries(directory):
    """Delete the temporary files atomic_write left behind when its process was killed (.tmp<PID>.name)."""
    for name in os.listdir(directory):
        pid = name[len(".tmp"):].split(".", 1)[0]
        if name.startswith(".tmp") and pid.isdigit() and not process_alive(int(pid)):
            os.remove(os.path.join(directory, name))


def sgd_options(config):
    """SGD's momentum, dampening, nesterov and weight_decay for every backend, as kenshohara's main.py
    derives them: Nesterov momentum runs without dampening, whatever `dampening` says."""
    if config["nesterov"] and not config["momentum"]:
        raise ConfigError(f"{config.source}: nesterov: true needs a momentum (momentum is 0); "
                          "set momentum, e.g. 0.9, or nesterov: false")
    return {"momentum": config["momentum"], "dampening": 0.0 if config["nesterov"] else config["dampening"],
            "nesterov": config["nesterov"], "weight_decay": config["weight_decay"]}


def checkpoint_meta(config, epoch, schedule, class_names=None):
    """What every engine's save stores next to the weights; `class_names` (the training set's label
    list) lets predict and evaluate name the classes without an annotation file (core.class_names)."""
    return {"epoch": epoch, "arch": arch_name(config), "scheduler": schedule.state_dict(),
            "config": dict(config), "class_names": list(class_names) if class_names is not None else None}


def _run_epoch(engine, loader, epoch, train, desc, config=None):
    """Loss and clip accuracy of one pass; `config` with label_smoothing / mixup / cutmix mixes training batches
    (core.mixing)."""
    engine.begin_epoch(epoch, train, len(loader) if train else None)
    loader.set_epoch(epoch)
    step = engine.train_batch if train else engine.eval_batch
    mix = train and config is not None and mixes(config)
    total_loss = total_correct = total = 0
    bar = tqdm(loader, desc=desc, leave=False, dynamic_ncols=True, disable=None if writes(engine) else True)
    for index, batch in enumerate(bar):
        x, y = batch[0], batch[1]
        if mix:  # accuracy against the batch's own labels, the loss against the mixed targets
            x, targets = mix_batch(x, y, config, batch_rng(config["manual_seed"], epoch, index, engine.rank))
            loss, logits = step(x, targets)
        else:
            loss, logits = step(x, y)
        n = len(y)
        total_loss += float(loss) * n
        total_correct += int((np.argmax(logits, 1) == y).sum())
        total += n
        bar.set_postfix(loss=f"{total_loss / total:.4f}", acc=f"{total_correct / total:.3f}")
    total_loss, total_correct, total = engine.all_reduce_sum([total_loss, total_correct, total])
    return total_loss / max(total, 1), total_correct / max(total, 1)


def fit(config, engine, train_loader, val_loader=None, log=print):
    """Train for config.n_epochs epochs, resuming from config.resume_path when set.

    In a data-parallel run every process calls fit; all load the resumed checkpoint, only the
    first writes train.log, val.log, the checkpoints and curves.png.
    """
    result_path = config["result_path"]
    main = writes(engine)
    os.makedirs(result_path, exist_ok=True)
    if main:
        remove_stale_temporaries(result_path)
    schedule = LRSchedule(config)
    start_epoch = 1
    if config["resume_path"]:
        meta = engine.load(config["resume_path"])
        schedule.load_state_dict(meta.get("scheduler", {}))
        start_epoch = int(meta["epoch"]) + 1
        if main:
            log(f"resumed from {config['resume_path']} (epoch {meta['epoch']})")
    best_acc = _best_val_acc(result_path, start_epoch - 1) if main and val_loader is not None else None
    if main:
        train_log = CSVLogger(os.path.join(result_path, "train.log"), ["epoch", "loss", "acc", "lr", "time"],
                              start_epoch - 1)
        val_log = CSVLogger(os.path.join(result_path, "val.log"), ["epoch", "loss", "acc"], start_epoch - 1) \
            if val_loader is not None else None
        board = EventWriter(result_path, start_epoch)
    class_names = getattr(train_loader.dataset, "class_names", None)
    history = []
    plotted = time.time()
    for epoch in range(start_epoch, config["n_epochs"] + 1):
        lr = schedule.lr(epoch)
        engine.set_lr(lr)
        started = time.time()
        loss, acc = _run_epoch(engine, train_loader, epoch, True, f"epoch {epoch} train", config)
        seconds = time.time() - started
        line = f"epoch {epoch}/{config['n_epochs']}  lr {lr:.4g}  train loss {loss:.4f} acc {acc:.3f}"
        val_loss = None
        if val_loader is not None:
            val_loss, val_acc = _run_epoch(engine, val_loader, epoch, False, f"epoch {epoch} val")
            line += f"  val loss {val_loss:.4f} acc {val_acc:.3f}"
        history.append({"epoch": epoch, "loss": loss, "acc": acc, "val_loss": val_loss})
        schedule.step(val_loss)
        if not main:
            continue
        train_log.log({"epoch": epoch, "loss": f"{loss:.6f}", "acc": f"{acc:.6f}", "lr": f"{lr:.6g}",
                       "time": f"{seconds:.1f}"})
        board.add_epoch(epoch, {"train/loss": loss, "train/acc": acc, "train/lr": lr})
        if val_loader is not None:
            val_log.log({"epoch": epoch, "loss": f"{val_loss:.6f}", "acc": f"{val_acc:.6f}"})
            board.add_epoch(epoch, {"val/loss": val_loss, "val/acc": val_acc})
        if val_loader is not None and (best_acc is None or val_acc > best_acc):
            best_acc = val_acc
            engine.save(os.path.join(result_path, f"save_best{engine.checkpoint_suffix}"),
                        checkpoint_meta(config, epoch, schedule, class_names))
            line += "  (best: save_best)"
        log(f"{line}  ({seconds:.0f}s)")
        if epoch % config["checkpoint"] == 0 or epoch == config["n_epochs"]:
            path = os.path.join(result_path, f"save_{epoch}{engine.checkpoint_suffix}")
            engine.save(path, checkpoint_meta(config, epoch, schedule, class_names))
        if epoch == config["n_epochs"] or time.time() - plotted >= CURVES_EVERY_S:
            plot_curves(result_path)
            plotted = time.time()
    if main:
        board.close()
    return history


def _best_val_acc(result_path, last_epoch):
    """The best validation accuracy logged up to `last_epoch` (a resumed run's save_best bar); None if none."""
    path = os.path.join(result_path, "val.log")
    if not last_epoch or not os.path.exists(path):
        return None
    accuracies = [float(row["acc"]) for row in read_log(path) if int(row["epoch"]) <= last_epoch]
    return max(accuracies, default=None)


class EventWriter:
    """TensorBoard event files in result_path, one scalar per tag and epoch (kenshohara's --tensorboard
    tags: train/loss, train/acc, train/lr, val/loss, val/acc; his train/lr logs the accuracy by mistake,
    here it is the rate). A resumed run purges the events after the epoch it resumes from."""

    def __init__(self, result_path, start_epoch):
        from tensorboardX import SummaryWriter
        self.writer = SummaryWriter(logdir=result_path, purge_step=start_epoch if start_epoch > 1 else None)

    def add_epoch(self, epoch, values):
        for tag, value in values.items():
            self.writer.add_scalar(tag, value, epoch)
        self.writer.flush()

    def close(self):
        self.writer.close()
