"""Accuracy, confusion matrix and kenshohara's results JSON, on numpy arrays.

Scores are ``N x n_classes`` arrays (logits or probabilities), labels are
integer arrays. Video-level accuracy is ``topk_accuracy(video_scores(...),
video_labels, k)``: as in kenshohara's inference.py, a video's score is the
mean of the softmax probabilities of its clips.
"""
import json
import os

import numpy as np


def softmax(logits, axis=-1):
    shifted = np.exp(logits - np.max(logits, axis=axis, keepdims=True))
    return shifted / np.sum(shifted, axis=axis, keepdims=True)


def topk_accuracy(scores, labels, k=1):
    """Fraction of rows whose label is among the k highest scores."""
    scores, labels = np.asarray(scores), np.asarray(labels)
    if len(labels) == 0:
        raise ValueError("accuracy of an empty set")
    top = np.argsort(-scores, axis=1, kind="stable")[:, :k]
    return float(np.mean(np.any(top == labels[:, None], axis=1)))


class VideoScoreSums:
    """Per-video sums of clip scores, added batch by batch: evaluation keeps n_videos rows, not every clip."""

    def __init__(self, n_videos, n_classes):
        self.sums = np.zeros((n_videos, n_classes))
        self.counts = np.zeros(n_videos, np.int64)

    def add(self, clip_scores, video_indices):
        np.add.at(self.sums, np.asarray(video_indices), np.asarray(clip_scores, dtype=np.float64))
        np.add.at(self.counts, np.asarray(video_indices), 1)

    def means(self):
        """n_videos x n_classes; NaN rows for videos without clips."""
        with np.errstate(invalid="ignore"):
            return self.sums / self.counts[:, None]


def video_scores(clip_scores, video_indices, n_videos):
    """Mean of the clip scores of each video: n_videos x n_classes (NaN rows for videos without clips)."""
    clip_scores = np.asarray(clip_scores)
    sums = VideoScoreSums(n_videos, clip_scores.shape[1])
    sums.add(clip_scores, video_indices)
    return sums.means()


def confusion_matrix(labels, predictions, n_classes):
    """Counts: row = true class, column = predicted class; every label and prediction in [0, n_classes)."""
    labels, predictions = np.asarray(labels), np.asarray(predictions)
    for name, values in (("labels", labels), ("predictions", predictions)):
        outside = values[(values < 0) | (values >= n_classes)]
        if outside.size:
            # np.add.at would count -1 (an unlabelled video) in the last row.
            raise ValueError(f"confusion matrix of {n_classes} classes: {name} outside [0, {n_classes}): "
                             f"{sorted(set(outside.tolist()))}")
    cm = np.zeros((n_classes, n_classes), dtype=np.int64)
    np.add.at(cm, (labels, predictions), 1)
    return cm


def mean_class_accuracy(scores, labels, n_classes=None):
    """Mean over the classes that occur in `labels` of the fraction of their rows predicted right."""
    scores, labels = np.asarray(scores), np.asarray(labels)
    cm = confusion_matrix(labels, np.argmax(scores, axis=1), n_classes or scores.shape[1])
    per_class = cm.sum(axis=1)
    present = per_class > 0
    return float(np.mean(np.diag(cm)[present] / per_class[present]))


def per_class_metrics(cm):
    """{"precision", "recall", "f1", "support"} arrays per class from a confusion matrix (rows: true).

    A class never predicted has precision 0, one never present recall 0 (scikit-learn's zero_division=0).
    """
    cm = np.asarray(cm, np.float64)
    hits, predicted, support = np.diag(cm), cm.sum(axis=0), cm.sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        precision = np.where(predicted > 0, hits / predicted, 0.0)
        recall = np.where(support > 0, hits / support, 0.0)
        f1 = np.where(precision + recall > 0, 2 * precision * recall / (precision + recall), 0.0)
    return {"precision": precision, "recall": recall, "f1": f1, "support": support.astype(np.int64)}


def per_class_table(cm, class_names):
    """The per-class precision / recall / F1 / support lines evaluate prints (classes with videos or predictions)."""
    values = per_class_metrics(cm)
    width = max(12, *(len(name) for name in class_names)) + 2
    lines = [f"{'class':{width}}{'precision':>10}{'recall':>10}{'f1':>10}{'videos':>8}"]
    for c, name in enumerate(class_names):
        if values["support"][c] or np.asarray(cm)[:, c].sum():
            lines.append(f"{name:{width}}{values['precision'][c]:10.4f}{values['recall'][c]:10.4f}"
                         f"{values['f1'][c]:10.4f}{values['support'][c]:8d}")
    return "\n".join(lines)


def plot_confusion_matrix(cm, class_names, path):
    """Save the row-normalised confusion matrix as a PNG, with the counts in the cells (up to 30 classes)."""
    # The Agg canvas directly: no pyplot, no global backend switch.
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    rows = np.maximum(cm.sum(axis=1, keepdims=True), 1)
    n = len(class_names)
    side = min(max(4.0, 0.25 * n), 40.0)
    figure = Figure(figsize=(side + 1.5, side))
    FigureCanvasAgg(figure)
    axes = figure.add_subplot()
    image = axes.imshow(cm / rows, cmap="Blues", vmin=0, vmax=1)
    figure.colorbar(image, ax=axes, label="fraction of the true class")
    if n <= 60:
        fontsize = 10 if n <= 10 else 6
        axes.set_xticks(range(n), class_names, rotation=45 if n <= 10 else 90, ha="right" if n <= 10 else "center",
                        fontsize=fontsize)
        axes.set_yticks(range(n), class_names, fontsize=fontsize)
    if n <= 30:
        for (row, column), count in np.ndenumerate(cm):
            if count:
                dark = cm[row, column] / rows[row, 0] > 0.5
                axes.text(column, row, str(count), ha="center", va="center", fontsize=max(5, 12 - n // 3),
                          color="white" if dark else "black")
    axes.set_xlabel("predicted")
    axes.set_ylabel("true")
    figure.tight_layout()
    figure.savefig(path, dpi=100)


def video_results(video_ids, scores, class_names, top_k):
    """kenshohara's results: {video_id: [{"label", "score"}, ...]} with the top_k scores, highest first."""
    scores = np.asarray(scores)
    top_k = min(top_k, len(class_names))
    results = {}
    for video_id, row in zip(video_ids, scores):
        top = np.argsort(-row, kind="stable")[:top_k]
        results[video_id] = [{"label": class_names[c], "score": float(row[c])} for c in top]
    return results


def write_val_json(path, video_ids, scores, class_names, top_k):
    """Write {"results": video_results(...)} atomically. `scores` should be softmax probabilities."""
    tmp_path = f"{path}.tmp"
    with open(tmp_path, "w") as f:
        json.dump({"results": video_results(video_ids, scores, class_names, top_k)}, f)
    os.replace(tmp_path, path)
