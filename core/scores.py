"""Per-video scores: what every backend's evaluate writes and core.fuse reads.

One .npz per model and subset, framework-neutral and pickle-free:

    video_ids    (V,)   unicode   ids as in the annotation JSON's database
    labels       (V,)   int64     class index, -1 when unknown
    class_names  (C,)   unicode   the annotation JSON's "labels", in order
    logits       (V, C) float32   mean of the video's clip logits
    probs        (V, C) float32   mean of the video's clip softmax; classes are ranked by these
"""
import os
import zipfile
from dataclasses import dataclass

import numpy as np

FIELDS = ("video_ids", "labels", "class_names", "logits", "probs")


@dataclass
class Scores:
    video_ids: list
    labels: np.ndarray
    class_names: list
    logits: np.ndarray
    probs: np.ndarray


def _check(path, scores):
    n_videos, n_classes = len(scores.video_ids), len(scores.class_names)
    expected = {"labels": (n_videos,), "logits": (n_videos, n_classes), "probs": (n_videos, n_classes)}
    for name, shape in expected.items():
        actual = np.shape(getattr(scores, name))
        if actual != shape:
            raise ValueError(f"{path}: {name} has shape {actual}, expected {shape} "
                             f"({n_videos} videos, {n_classes} classes)")
    if len(set(scores.video_ids)) != n_videos:
        raise ValueError(f"{path}: video ids are not unique")


def save_scores(path, video_ids, labels, class_names, logits, probs):
    """Write the scores to `path` (.npz) atomically: a reader never sees a half-written file."""
    scores = Scores(list(video_ids), np.asarray(labels, np.int64), list(class_names),
                    np.asarray(logits, np.float32), np.asarray(probs, np.float32))
    _check(path, scores)
    directory = os.path.dirname(os.path.abspath(path))
    os.makedirs(directory, exist_ok=True)
    tmp = f"{path}.tmp{os.getpid()}"
    with open(tmp, "wb") as f:  # a file object: np.savez would append ".npz" to a name
        np.savez(f, video_ids=np.array(scores.video_ids, dtype=np.str_), labels=scores.labels,
                 class_names=np.array(scores.class_names, dtype=np.str_), logits=scores.logits,
                 probs=scores.probs)
    os.replace(tmp, path)


def load_scores(path):
    """Read a file written by `save_scores`."""
    try:
        with np.load(path, allow_pickle=False) as data:
            arrays = {name: data[name] for name in data.files}
    except (OSError, ValueError, EOFError, AttributeError, zipfile.BadZipFile) as e:
        raise ValueError(f"{path}: cannot read the scores file ({e})") from e
    missing = [name for name in FIELDS if name not in arrays]
    if missing:
        raise ValueError(f"{path}: not a scores file, missing {', '.join(missing)}")
    scores = Scores(arrays["video_ids"].tolist(), arrays["labels"].astype(np.int64),
                    arrays["class_names"].tolist(), arrays["logits"], arrays["probs"])
    _check(path, scores)
    return scores
