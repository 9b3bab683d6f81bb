"""The training loop every backend runs, written once.

A backend supplies an *engine* (see `Engine`) that knows its framework:
one train step, one eval step, setting the learning rate, saving and
loading checkpoints. Everything else lives here: epochs, data order, the
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
import contextlib
import csv
import math
import os
import time

import numpy as np
from tqdm import tqdm

from core.archs import arch_name, kenshohara_arch
from core.config import ConfigError
from core.state_dict import StateDictMismatch

HEAD_PREFIXES = ("fc.", "logits.")


class ResumeError(ValueError):
    """A checkpoint that cannot continue this run: another architecture or another optimizer's state."""


class WeightsFileError(ValueError):
    """A pretrain_path / resume_path file that cannot be read; the message names the file."""


class Engine:
    """What a backend implements for `fit` (documentation of the interface)."""

    checkpoint_suffix = ""  # e.g. ".pth"
    rank, world_size = 0, 1  # this process among the data-parallel processes

    def all_reduce_sum(self, values):
        """The element-wise sums of `values` (floats) over all processes."""
        return list(values)

    def begin_epoch(self, epoch, train):
        """Switch train/eval mode; in train mode reseed the framework RNG with epoch_seed()."""

    def set_lr(self, lr):
        raise NotImplementedError

    def train_batch(self, x, y):
        """One optimisation step on numpy inputs; returns (mean loss, logits as numpy)."""
        raise NotImplementedError

    def eval_batch(self, x, y):
        """Forward without gradients; returns (mean loss, logits as numpy)."""
        raise NotImplementedError

    def save(self, path, meta):
        """Write model + optimizer + `meta` atomically at `path` (+ sidecars)."""
        raise NotImplementedError

    def load(self, path):
        """Restore model + optimizer from a checkpoint written by save(); return its meta."""
        raise NotImplementedError

    def finish(self):
        """After training: leave the data-parallel group, if the framework needs that done explicitly."""


def epoch_seed(seed, epoch, rank=0):
    """Framework RNG seed for one epoch (dropout), independent of resume; each process its own."""
    return int(np.random.default_rng([seed, epoch, 7] + [rank] * (rank > 0)).integers(2**31 - 1))


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


def atomic_write(path, write):
    """Call write(tmp_path), then rename over `path`: a crash never leaves a half-written file."""
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


def trainable_names(names, ft_begin_module):
    """kenshohara's get_fine_tuning_parameters: parameters from the first one whose
    top-level module is `ft_begin_module` on; all when it is empty."""
    names = list(names)
    if not ft_begin_module:
        return names
    tops = [n.split(".")[0] for n in names]
    if ft_begin_module not in tops:
        raise ValueError(f"ft_begin_module '{ft_begin_module}' is not a module of the model "
                         f"(top-level modules: {', '.join(dict.fromkeys(tops))})")
    return names[tops.index(ft_begin_module):]


def sgd_options(config):
    """SGD's momentum, dampening, nesterov and weight_decay for every backend, as kenshohara's main.py
    derives them: Nesterov momentum runs without dampening, whatever `dampening` says."""
    if config["nesterov"] and not config["momentum"]:
        raise ConfigError(f"{config.source}: nesterov: true needs a momentum (momentum is 0); "
                          "set momentum, e.g. 0.9, or nesterov: false")
    return {"momentum": config["momentum"], "dampening": 0.0 if config["nesterov"] else config["dampening"],
            "nesterov": config["nesterov"], "weight_decay": config["weight_decay"]}


def fit_pretrained(pretrained, model_state, n_pretrain_classes=0, source=""):
    """Pretrained weights ready to load into a model with a new head.

    Keeps the model's own (freshly initialised) head where the pretrained head's
    shape differs: the reference replaces `fc` for n_classes. Every other key
    must fit. `n_pretrain_classes` (0: unchecked) is the head size the file must have;
    a head of another size is a StateDictMismatch listing the head's keys.
    """
    state = dict(pretrained)
    heads = [name for name in model_state if name.startswith(HEAD_PREFIXES) and name in state]
    wrong = [(name, (n_pretrain_classes,) + state[name].shape[1:], state[name].shape) for name in heads
             if n_pretrain_classes and len(state[name]) != n_pretrain_classes]
    if wrong:
        raise StateDictMismatch(mis_shaped=wrong, source=f"{source} (n_pretrain_classes: {n_pretrain_classes})")
    for name in heads:
        if state[name].shape != model_state[name].shape:
            state[name] = model_state[name]
    return state


@contextlib.contextmanager
def naming_file(path):
    """Name `path` in a StateDictMismatch raised while its weights are loaded into a model."""
    try:
        yield
    except StateDictMismatch as error:
        raise StateDictMismatch(error.missing, error.unexpected, error.mis_shaped, source=path) from None


def load_weights(model, weights, path, n_pretrain_classes=None):
    """Load the weights file `path` into `model` through a backend's `weights` module.

    n_pretrain_classes None: the file must fit exactly (a checkpoint). Otherwise it is a
    pretrained file whose head is replaced where its size differs (fit_pretrained).
    A StateDictMismatch names the file.
    """
    try:
        state = weights.load_pretrained(path)
    except StateDictMismatch:
        raise
    except Exception as error:  # noqa: BLE001 - whatever a reader raises on a missing, cut or foreign file
        message = str(error) if str(path) in str(error) else f"{path}: cannot be read ({type(error).__name__}: {error})"
        raise WeightsFileError(message) from None
    if n_pretrain_classes is not None:
        state = fit_pretrained(state, weights.to_numpy_state(model), n_pretrain_classes, path)
    with naming_file(path):
        weights.load_numpy_state(model, state)


def checkpoint_meta(config, epoch, schedule):
    return {"epoch": epoch, "arch": arch_name(config), "scheduler": schedule.state_dict(),
            "config": dict(config)}


def _run_epoch(engine, loader, epoch, train, desc):
    engine.begin_epoch(epoch, train)
    loader.set_epoch(epoch)
    step = engine.train_batch if train else engine.eval_batch
    total_loss = total_correct = total = 0
    bar = tqdm(loader, desc=desc, leave=False, dynamic_ncols=True, disable=None if writes(engine) else True)
    for batch in bar:
        x, y = batch[0], batch[1]
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
    schedule = LRSchedule(config)
    start_epoch = 1
    if config["resume_path"]:
        meta = engine.load(config["resume_path"])
        # kenshohara writes his arch as '{model}-{depth}' ('resnet-10'), we as 'resnet10'.
        if kenshohara_arch(meta["arch"]) != kenshohara_arch(engine.arch):
            raise ResumeError(f"{config['resume_path']}: checkpoint of {meta['arch']}, the config builds "
                              f"{engine.arch}")
        schedule.load_state_dict(meta.get("scheduler", {}))
        start_epoch = int(meta["epoch"]) + 1
        if main:
            log(f"resumed from {config['resume_path']} (epoch {meta['epoch']})")
    if main:
        train_log = CSVLogger(os.path.join(result_path, "train.log"), ["epoch", "loss", "acc", "lr", "time"],
                              start_epoch - 1)
        val_log = CSVLogger(os.path.join(result_path, "val.log"), ["epoch", "loss", "acc"], start_epoch - 1) \
            if val_loader is not None else None
    history = []
    for epoch in range(start_epoch, config["n_epochs"] + 1):
        lr = schedule.lr(epoch)
        engine.set_lr(lr)
        started = time.time()
        loss, acc = _run_epoch(engine, train_loader, epoch, True, f"epoch {epoch} train")
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
        if val_loader is not None:
            val_log.log({"epoch": epoch, "loss": f"{val_loss:.6f}", "acc": f"{val_acc:.6f}"})
        log(f"{line}  ({seconds:.0f}s)")
        if epoch % config["checkpoint"] == 0 or epoch == config["n_epochs"]:
            path = os.path.join(result_path, f"save_{epoch}{engine.checkpoint_suffix}")
            engine.save(path, checkpoint_meta(config, epoch, schedule))
    if main:
        plot_curves(result_path)
    return history
