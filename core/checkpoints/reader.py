"""Read, check and write checkpoints of any format and layout.

Everything passes through the neutral {name: numpy array} of core.state_dict, checked against the
shapes the architecture implies (core.archs) before it is used or written.
"""
import hashlib
import json
import os
from dataclasses import dataclass, field, replace
from types import SimpleNamespace
from typing import Optional

import numpy as np

from core import archs, safe_pickle
from core.checkpoints.formats import format_of, write_atomically
from core.checkpoints.layouts import PADDLE_NAME_TABLE, Meta, detect_layout, get_layout
from core.state_dict import check_state, strip_prefix

# Our MindSpore training checkpoints keep the optimizer's parameters under this prefix.
OPTIMIZER_PREFIX = "optimizer."
# A Paddle training checkpoint is save_N.pdparams + save_N.pdopt + save_N.json; the json is written last,
# with the digests of the other two, so it is the commit point of the set.
PADDLE_SIDECARS = (".pdopt", ".json")


@dataclass
class Checkpoint:
    state: dict  # neutral {name: np.ndarray}
    arch: str
    model_kwargs: dict  # builder kwargs recovered from the shapes
    layout: str = "neutral"  # the layout it was read in
    epoch: Optional[int] = None
    dropped: list = field(default_factory=list)  # training state left out when reading
    stored: dict = field(default_factory=dict)  # class names and config kept with it (core.class_names)


def read_checkpoint(path, fmt=None, layout=None, arch=None):
    """Read `path` (format from its extension unless `fmt`, layout detected unless `layout`).

    The architecture comes from the file when it says so, else from `arch`, else from the shapes.
    Raises core.state_dict.StateDictMismatch when the parameters do not fit that architecture.
    """
    from core.class_names import stored_meta  # it reads the sidecars of the formats defined here
    fmt = format_of(path, fmt)
    tree = fmt.read(path)
    stored = stored_meta(path, tree)
    layout = get_layout(layout or detect_layout(tree, fmt), fmt, source=path)
    state, meta = layout.read(tree, fmt, path)
    del tree
    if arch and meta.arch and arch != meta.arch:
        raise ValueError(f"{path}: the file says its architecture is {meta.arch}, not {arch}")
    arch = meta.arch or arch
    try:
        if arch:
            model_kwargs = archs.infer_kwargs(arch, state)
        else:
            arch, model_kwargs = archs.infer_arch(state)
    except ValueError as error:
        raise ValueError(f"{path}: {error}") from None
    shapes = {name: value.shape for name, value in state.items()}
    check_state(archs.without_absent_head(arch, archs.expected_shapes(arch, **model_kwargs), shapes), shapes,
                source=path)
    return Checkpoint(state, arch, model_kwargs, layout.name, meta.epoch, meta.dropped, stored)


def read_state(path):
    """The neutral {name: float32 array} of the weights file `path`, in any format and layout."""
    return float32_state(read_checkpoint(path))


def float32_state(checkpoint):
    """The checkpoint's neutral weights as float32 arrays (what a model loads)."""
    return {name: np.asarray(value, np.float32) for name, value in checkpoint.state.items()}


@dataclass
class TrainingCheckpoint:
    """What an engine's training checkpoint (or kenshohara's save_N.pth) holds, read once."""
    state: dict  # neutral weights
    arch: str  # registry name
    epoch: int
    scheduler: dict
    config: dict  # the run's config ({} in kenshohara's files)
    optimizer: object  # the framework's optimizer state, a tree of numpy arrays and plain values
    counters: dict = field(default_factory=dict)  # torch BatchNorm num_batches_tracked, neutral names
    scaler: Optional[dict] = None  # amp GradScaler state


class NotATrainingCheckpoint(ValueError):
    """A weights file (or an incomplete checkpoint) given where training state is needed."""


def read_training_checkpoint(path):
    """Read a training checkpoint of any backend: weights, optimizer state and the run's bookkeeping."""
    fmt = format_of(path)
    if fmt.name not in _TRAINING_READERS:
        raise NotATrainingCheckpoint(f"{path}: a .{fmt.name} file holds no training state; resume_path takes "
                                     "a save_N checkpoint of train (.pth, .pdparams, .ckpt)")
    checkpoint = _TRAINING_READERS[fmt.name](path, fmt)
    check_state(archs.expected_shapes(checkpoint.arch, **archs.infer_kwargs(checkpoint.arch, checkpoint.state)),
                {name: value.shape for name, value in checkpoint.state.items()}, source=path)
    return checkpoint


def _weights_only(path):
    return NotATrainingCheckpoint(f"{path}: a weights file without optimizer state, not a training checkpoint; "
                                  "to start from these weights give it as pretrain_path")


def _read_pth_training(path, fmt):
    tree = fmt.read(path)
    if not isinstance(tree, dict) or "optimizer" not in tree or not isinstance(tree.get("state_dict"), dict):
        raise _weights_only(path)
    state, meta = get_layout("kenshohara", fmt, source=path).read(tree, fmt, path)
    counters = {name: value for name, value in strip_prefix(tree["state_dict"]).items()
                if name.endswith("num_batches_tracked")}
    return TrainingCheckpoint(state, meta.arch, int(tree["epoch"]), tree.get("scheduler") or {},
                              tree.get("config") or {}, tree["optimizer"], counters, tree.get("scaler"))


def file_digest(path):
    digest = hashlib.sha256()
    with open(path, "rb") as file:
        for block in iter(lambda: file.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def paddle_set_record(stem):
    """What the json of a Paddle checkpoint set records of its other members."""
    return {suffix: {"sha256": file_digest(stem + suffix)} for suffix in (".pdparams", ".pdopt")}


def _read_pdparams_training(path, fmt):
    stem = path[: -len(".pdparams")]
    meta = {}
    if os.path.exists(stem + ".json"):
        with open(stem + ".json") as file:
            meta = json.load(file)
    if not os.path.exists(stem + ".pdopt") and "members" not in meta:
        raise _weights_only(path)  # a weights file, maybe with its class names (python -m convert)
    missing = [stem + suffix for suffix in PADDLE_SIDECARS if not os.path.exists(stem + suffix)]
    if missing:
        raise NotATrainingCheckpoint(f"{path}: incomplete checkpoint set ({', '.join(missing)} missing: its "
                                     f"write was interrupted){_earlier_sets(path)}")
    if meta.get("members") != paddle_set_record(stem):
        raise NotATrainingCheckpoint(f"{path}: its .pdparams / .pdopt are not the ones its .json recorded (a write "
                                     f"of the set was interrupted){_earlier_sets(path)}")
    state, _ = get_layout("neutral", fmt, source=path).read(fmt.read(path), fmt, path)
    optimizer = safe_pickle.load(stem + ".pdopt")
    optimizer.pop(PADDLE_NAME_TABLE, None)
    return TrainingCheckpoint(state, meta["arch"], int(meta["epoch"]), meta.get("scheduler") or {},
                              meta.get("config") or {}, optimizer, scaler=meta.get("scaler"))


def _earlier_sets(path):
    """'; the newest complete one is ...' for a Paddle set that cannot be resumed."""
    directory, name = os.path.split(os.path.abspath(path))
    epoch = name[len("save_"): -len(".pdparams")]
    if not (name.startswith("save_") and epoch.isdigit()):
        return ""
    candidates = sorted((int(n[5:-9]) for n in os.listdir(directory)
                         if n.startswith("save_") and n.endswith(".pdparams") and n[5:-9].isdigit()
                         and int(n[5:-9]) < int(epoch)), reverse=True)
    for earlier in candidates:
        stem = os.path.join(directory, f"save_{earlier}")
        try:
            with open(stem + ".json") as file:
                if json.load(file).get("members") == paddle_set_record(stem):
                    return f"; the newest complete one is {stem}.pdparams"
        except (OSError, ValueError):
            continue
    return "; no earlier complete checkpoint is there"


def _read_ckpt_training(path, fmt):
    tree = fmt.read(path)
    if not any(name.startswith(OPTIMIZER_PREFIX) for name in tree) or "epoch" not in tree:
        raise _weights_only(path)
    optimizer = {name[len(OPTIMIZER_PREFIX):]: value for name, value in tree.items()
                 if name.startswith(OPTIMIZER_PREFIX)}
    state, meta = get_layout("neutral", fmt, source=path).read(tree, fmt, path)
    text = {name: tree[name] for name in ("arch", "epoch", "scheduler", "config", "scaler") if name in tree}
    return TrainingCheckpoint(state, text["arch"], int(text["epoch"]), json.loads(text.get("scheduler", "{}")),
                              json.loads(text.get("config", "{}")), optimizer,
                              scaler=json.loads(text["scaler"]) if "scaler" in text else None)


_TRAINING_READERS = {"pth": _read_pth_training, "pdparams": _read_pdparams_training, "ckpt": _read_ckpt_training}


def write_checkpoint(path, checkpoint, fmt=None, layout="neutral", stored=None):
    """Write `checkpoint` to `path` atomically in format `fmt` (default: from the extension) and `layout`.

    `stored` ({"class_names", "config"}, core.class_names.read_checkpoint_meta) goes where the training
    engines keep it: entries of a kenshohara .pth, text entries of a .ckpt, the .pdparams' <stem>.json.
    Returns whether it could be stored (a flat .pth, .npz or .safetensors holds parameters only).
    """
    fmt = format_of(path, fmt)
    layout = get_layout(layout, fmt, checkpoint.arch, source=path)
    tree = layout.write(checkpoint.state, fmt, Meta(checkpoint.arch, checkpoint.epoch))
    stored = {key: value for key, value in (stored or {}).items() if value is not None}
    if stored and fmt.name == "ckpt":
        tree.update({key: json.dumps(value) for key, value in stored.items()})
    elif stored and fmt.name == "pth" and layout.name == "kenshohara":
        tree.update(stored)
    write_atomically(path, fmt, tree)
    if stored and fmt.name == "pdparams":
        write_atomically(os.path.splitext(path)[0] + ".json", SimpleNamespace(write=write_json), stored)
    return not stored or holds_meta(fmt, layout.name)


def holds_meta(fmt, layout):
    """Whether a file of Format `fmt` in `layout` keeps the class names and config (write_checkpoint's `stored`)."""
    return fmt.name in ("ckpt", "pdparams") or layout == "kenshohara"


def write_json(path, tree):
    """A .pdparams' <stem>.json sidecar (the Paddle engine's checkpoint record, convert's class names)."""
    with open(path, "w") as file:
        json.dump(tree, file, indent=1)


def replace_head(checkpoint, n_classes, seed=0):
    """A copy with a freshly initialised classifier for `n_classes` (PyTorch's default init), for fine-tuning."""
    weight_name, bias_name = archs.get(checkpoint.arch).head
    old_weight = checkpoint.state[weight_name]
    fan_in = int(np.prod(old_weight.shape[1:]))
    bound = 1 / np.sqrt(fan_in)
    rng = np.random.default_rng(seed)
    state = dict(checkpoint.state)
    state[weight_name] = rng.uniform(-bound, bound, (n_classes, *old_weight.shape[1:])).astype(old_weight.dtype)
    state[bias_name] = rng.uniform(-bound, bound, (n_classes,)).astype(checkpoint.state[bias_name].dtype)
    return replace(checkpoint, state=state, model_kwargs={**checkpoint.model_kwargs, "n_classes": n_classes})

