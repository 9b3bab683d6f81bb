"""Class names and training config stored with a checkpoint, read without a framework.

Every training checkpoint carries the label list it was trained on and its config, next to the
weights (core.training.checkpoint_meta, written by each engine's save):

  .pth       the dict's 'class_names' (list of str) and 'config' entries (kenshohara's layout + ours)
  .pdparams  the sidecar <stem>.json: {"arch", "epoch", "scheduler", "config", "class_names"}
  .ckpt      string entries 'class_names' and 'config' (JSON text)

A file without names (a community checkpoint) takes a labels file: one name per line, or
kenshohara's annotation JSON (its "labels").
"""
import json
import os

from core.checkpoints.formats import EXTENSIONS, FORMATS


class LabelsError(ValueError):
    """A labels file that cannot be read, or names that do not fit the model."""


def _decoded(value):
    """A .ckpt stores metadata as JSON text; .pth and the sidecar JSON store it as is."""
    return json.loads(value) if isinstance(value, str) else value


def read_checkpoint_meta(path):
    """{"class_names": list or None, "config": dict or None} stored with the checkpoint at `path`."""
    extension = os.path.splitext(path)[1].lower()
    tree = FORMATS[EXTENSIONS[extension]].read(path) if EXTENSIONS.get(extension) in ("pth", "ckpt") else None
    return stored_meta(path, tree)


def stored_meta(path, tree=None):
    """read_checkpoint_meta from the `tree` a format's reader already made of `path` (None for a .pdparams,
    whose names are in its sidecar <stem>.json)."""
    found = tree if isinstance(tree, dict) else {}
    stem, extension = os.path.splitext(path)
    if extension.lower() == ".pdparams" and os.path.isfile(stem + ".json"):
        with open(stem + ".json") as f:
            found = json.load(f)
    names, config = _decoded(found.get("class_names")), _decoded(found.get("config"))
    if names is not None and not (isinstance(names, list) and all(isinstance(n, str) for n in names)):
        names = None
    return {"class_names": names, "config": config if isinstance(config, dict) else None}


def read_labels_file(path):
    """Class names from a text file (one per line) or an annotation JSON (its "labels")."""
    try:
        with open(path) as f:
            text = f.read()
    except OSError as error:
        raise LabelsError(f"{path}: cannot read the labels file ({error.strerror or error})") from None
    if path.lower().endswith(".json"):
        try:
            labels = json.loads(text)["labels"]
        except (json.JSONDecodeError, KeyError, TypeError):
            raise LabelsError(f"{path}: not an annotation JSON with a 'labels' list") from None
        names = [str(label) for label in labels]
    else:
        names = [line.strip() for line in text.splitlines() if line.strip()]
    if not names:
        raise LabelsError(f"{path}: no class names in the file")
    return names


def class_names_for(checkpoint_names, labels_path, n_classes, log=print):
    """The names to print for a model of `n_classes`: --labels FILE first, else the checkpoint's,
    else the indices '0', '1', ... (and say so)."""
    if labels_path:
        names, origin = read_labels_file(labels_path), labels_path
    elif checkpoint_names:
        names, origin = checkpoint_names, "the checkpoint"
    else:
        log(f"the checkpoint holds no class names: printing class indices 0..{n_classes - 1} "
            "(give --labels FILE, one name per line or an annotation JSON)")
        return [str(i) for i in range(n_classes)]
    if len(names) > n_classes:
        raise LabelsError(f"{origin}: {len(names)} class names, but the model has {n_classes} classes")
    if len(names) < n_classes:  # a head trained with more outputs than labels (n_classes above the label count)
        log(f"{origin} names {len(names)} classes, the model has {n_classes}: outputs {len(names)}..{n_classes - 1} "
            "are printed by their index")
        names = list(names) + [str(i) for i in range(len(names), n_classes)]
    return names
