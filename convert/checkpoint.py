"""Read, check, rewrite and write checkpoints of any format and layout.

Everything passes through the neutral {name: numpy array} of core.state_dict, checked against
the shapes the architecture implies (shapes.py) before anything is written.
"""
import json
import os
from dataclasses import dataclass, field, replace
from typing import Optional

import numpy as np

from convert.formats import EXTENSIONS, format_of, write_atomically
from convert.layouts import Meta, detect_layout, get_layout
from convert.shapes import HEADS, expected_shapes, family, infer_arch, infer_kwargs
from core.state_dict import check_state


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
    from core.class_names import stored_meta  # core.class_names reads files through convert
    fmt = format_of(path, fmt)
    tree = fmt.read(path)
    stored = stored_meta(path, tree)
    layout = get_layout(layout or detect_layout(tree, fmt), fmt, source=path)
    state, meta = layout.read(tree, fmt, path)
    del tree
    if arch and meta.arch and arch != meta.arch:
        raise ValueError(f"{path}: the file says its architecture is {meta.arch}, not {arch}")
    shapes = {name: value.shape for name, value in state.items()}
    arch = meta.arch or arch
    try:
        if arch:
            model_kwargs = infer_kwargs(arch, shapes)
        else:
            arch, model_kwargs = infer_arch(shapes)
    except ValueError as error:
        raise ValueError(f"{path}: {error}") from None
    check_state(expected_shapes(arch, **model_kwargs), shapes, source=path)
    return Checkpoint(state, arch, model_kwargs, layout.name, meta.epoch, meta.dropped, stored)


def read_state(path, native_suffixes, read_native):
    """The neutral {name: float32 array} of the weights file `path`, for a backend's load_pretrained.

    `read_native(path)` reads the backend's own `native_suffixes` and any extension convert does not
    know (as before convert could read other formats); every other format (kenshohara's .pth in Paddle,
    a .ckpt in PyTorch, .npz, ...) and community layout goes through read_checkpoint.
    """
    extension = os.path.splitext(path)[1].lower()
    if extension in native_suffixes or extension not in EXTENSIONS:
        return read_native(path)
    return {name: np.asarray(value, np.float32) for name, value in read_checkpoint(path).state.items()}


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
        sidecar = os.path.splitext(path)[0] + ".json"
        write_atomically(sidecar, _JSON, stored)
    return not stored or holds_meta(fmt, layout.name)


def holds_meta(fmt, layout):
    """Whether a file of Format `fmt` in `layout` keeps the class names and config (write_checkpoint's `stored`)."""
    return fmt.name in ("ckpt", "pdparams") or layout == "kenshohara"


class _JSON:
    """write_atomically's format for the .pdparams sidecar (as the Paddle engine writes it)."""

    @staticmethod
    def write(path, tree):
        with open(path, "w") as file:
            json.dump(tree, file, indent=1)


def replace_head(checkpoint, n_classes, seed=0):
    """A copy with a freshly initialised classifier for `n_classes` (PyTorch's default init), for fine-tuning."""
    weight_name, bias_name = HEADS[family(checkpoint.arch)]
    old_weight = checkpoint.state[weight_name]
    fan_in = int(np.prod(old_weight.shape[1:]))
    bound = 1 / np.sqrt(fan_in)
    rng = np.random.default_rng(seed)
    state = dict(checkpoint.state)
    state[weight_name] = rng.uniform(-bound, bound, (n_classes, *old_weight.shape[1:])).astype(old_weight.dtype)
    state[bias_name] = rng.uniform(-bound, bound, (n_classes,)).astype(checkpoint.state[bias_name].dtype)
    return replace(checkpoint, state=state, model_kwargs={**checkpoint.model_kwargs, "n_classes": n_classes})


def convert(src, dst, from_fmt=None, to_fmt=None, layout_in=None, layout_out="neutral", arch=None,
            n_classes=None, drop_head=False, log=print):
    """Convert `src` to `dst`; returns the Checkpoint written."""
    checkpoint = read_checkpoint(src, from_fmt, layout_in, arch)
    stored = dict(checkpoint.stored)
    kwargs = ", ".join(f"{key}={value}" for key, value in checkpoint.model_kwargs.items())
    log(f"read {src}: {checkpoint.arch}({kwargs}), layout {checkpoint.layout}, "
        f"{len(checkpoint.state)} arrays")
    keeps = holds_meta(format_of(dst, to_fmt), layout_out)
    # The class names and config are written again where the output can hold them.
    dropped = [name for name in checkpoint.dropped if not (keeps and name in checkpoint.stored)]
    if dropped:
        more = len(dropped) - 10
        log(f"dropping training state (not needed to run or fine-tune the model): {', '.join(dropped[:10])}"
            + (f" and {more} more" if more > 0 else ""))
    if drop_head:
        if n_classes is None:
            raise ValueError("--drop-head needs --n_classes N: the number of classes of the new head")
        checkpoint = replace_head(checkpoint, n_classes)
        log(f"replaced the classifier: {n_classes} classes, freshly initialised")
    elif n_classes is not None and n_classes != checkpoint.model_kwargs["n_classes"]:
        raise ValueError(f"{src}: has {checkpoint.model_kwargs['n_classes']} classes, not {n_classes}; "
                         "add --drop-head to replace the classifier")
    if drop_head:
        stored["class_names"] = None  # the new head's classes are not the file's
    kept = [name.replace("_", " ") for name, value in stored.items() if value is not None]
    write_checkpoint(dst, checkpoint, to_fmt, layout_out, stored)
    if kept and not keeps:
        log(f"not stored in {dst}: the {' and '.join(kept)} of {src} (a flat file holds parameters only; .ckpt, "
            ".pdparams and --layout-out kenshohara .pth keep them)")
    elif kept:
        log(f"kept the {' and '.join(kept)}")
    log(f"wrote {dst} (layout {layout_out})")
    return checkpoint
