"""Accuracy, video scores, confusion matrix and the results JSON, against hand-computed cases."""
import json

import numpy as np
import pytest

from core.scores import Scores, load_scores

from core import evaluation
from core.metrics import (confusion_matrix, mean_class_accuracy, per_class_metrics, per_class_table,
                          plot_confusion_matrix, softmax, topk_accuracy,
                          video_scores, write_val_json)

SCORES = np.array([[0.1, 0.7, 0.2],   # top-1 class 1, top-2 {1, 2}
                   [0.5, 0.3, 0.2],   # top-1 class 0, top-2 {0, 1}
                   [0.2, 0.3, 0.5],   # top-1 class 2, top-2 {2, 1}
                   [0.6, 0.1, 0.3]])  # top-1 class 0, top-2 {0, 2}
LABELS = np.array([1, 1, 0, 2])


def test_topk_accuracy():
    assert topk_accuracy(SCORES, LABELS, 1) == 0.25
    assert topk_accuracy(SCORES, LABELS, 2) == 0.75
    assert topk_accuracy(SCORES, LABELS, 3) == 1.0


def test_video_scores_average_the_clips_of_each_video():
    clip_scores = np.array([[1.0, 0.0], [0.0, 1.0], [0.2, 0.8], [0.4, 0.6], [0.9, 0.1]])
    scores = video_scores(clip_scores, [0, 0, 1, 1, 1], 3)
    np.testing.assert_allclose(scores[:2], [[0.5, 0.5], [0.5, 0.5]])
    assert np.isnan(scores[2]).all()
    assert topk_accuracy(video_scores(SCORES, [0, 0, 1, 1], 2), [1, 2], 1) == 0.5


def test_confusion_matrix_and_mean_class_accuracy():
    cm = confusion_matrix(LABELS, SCORES.argmax(axis=1), 3)
    np.testing.assert_array_equal(cm, [[0, 0, 1], [1, 1, 0], [1, 0, 0]])
    # Per class: 0/1, 1/2, 0/1.
    assert mean_class_accuracy(SCORES, LABELS) == pytest.approx(1 / 6)
    # Classes absent from the labels do not count.
    assert mean_class_accuracy(SCORES[:2], LABELS[:2]) == pytest.approx(0.5)


def test_confusion_matrix_rejects_labels_outside_the_classes():
    # -1 (an unlabelled video) would otherwise be counted in the last row.
    with pytest.raises(ValueError, match=r"labels outside \[0, 3\): \[-1\]"):
        confusion_matrix([0, -1, 2], [0, 1, 2], 3)
    with pytest.raises(ValueError, match=r"predictions outside \[0, 3\): \[3, 4\]"):
        confusion_matrix([0, 1, 2], [4, 3, 4], 3)


def test_write_outputs_leaves_unlabelled_videos_out_of_the_confusion_matrix(tmp_path, monkeypatch):
    plotted = []
    monkeypatch.setattr(evaluation.metrics, "plot_confusion_matrix", lambda cm, names, path: plotted.append(cm))
    probs = SCORES.astype(np.float32)
    config = {"result_path": str(tmp_path), "output_topk": 2, "inference_subset": "validation"}
    evaluation.write_outputs(config, Scores(["v1", "v2", "v3", "v4"], np.array([1, -1, 0, -1]), ["a", "b", "c"],
                                            probs, probs), "rgb")
    # v1 (b, predicted b) and v3 (a, predicted c); v2 and v4 have no label.
    np.testing.assert_array_equal(plotted[0], [[0, 0, 1], [0, 1, 0], [0, 0, 0]])
    assert load_scores(str(tmp_path / "scores_rgb.npz")).labels.tolist() == [1, -1, 0, -1]
    # No labelled video at all: val.json and the scores, no plot.
    evaluation.write_outputs(config, Scores(["v2"], np.array([-1]), ["a", "b", "c"], probs[1:2], probs[1:2]),
                             "flow")
    assert len(plotted) == 1
    assert json.loads((tmp_path / "val_flow.json").read_text())["results"]["v2"][0]["label"] == "a"


def test_softmax_is_stable_and_normalised():
    p = softmax(np.array([[1000.0, 1000.0 + np.log(3.0)], [0.0, 0.0]]))
    np.testing.assert_allclose(p, [[0.25, 0.75], [0.5, 0.5]])


def test_plot_confusion_matrix_writes_a_png(tmp_path):
    path = tmp_path / "cm.png"
    plot_confusion_matrix(np.array([[3, 1], [0, 2]]), ["walk", "run"], str(path))
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_write_val_json_top_k_sorted(tmp_path):
    path = tmp_path / "val.json"
    write_val_json(str(path), ["v1", "v2"], SCORES[:2], ["a", "b", "c"], top_k=2)
    results = json.loads(path.read_text())["results"]
    assert results["v1"] == [{"label": "b", "score": 0.7}, {"label": "c", "score": 0.2}]
    assert results["v2"] == [{"label": "a", "score": 0.5}, {"label": "b", "score": 0.3}]
    write_val_json(str(path), ["v1"], SCORES[:1], ["a", "b", "c"], top_k=10)
    assert [r["label"] for r in json.loads(path.read_text())["results"]["v1"]] == ["b", "c", "a"]
    assert [p.name for p in tmp_path.iterdir()] == ["val.json"]


def test_per_class_precision_recall_f1_from_counts():
    # true a: 3 right, 1 taken for b; true b: 2 right; nothing is c (never present, never predicted).
    values = per_class_metrics(np.array([[3, 1, 0], [0, 2, 0], [0, 0, 0]]))
    np.testing.assert_allclose(values["precision"], [1.0, 2 / 3, 0.0])
    np.testing.assert_allclose(values["recall"], [0.75, 1.0, 0.0])
    np.testing.assert_allclose(values["f1"], [6 / 7, 0.8, 0.0])
    assert values["support"].tolist() == [4, 2, 0]
    table = per_class_table(np.array([[3, 1, 0], [0, 2, 0], [0, 0, 0]]), ["fight", "nonfight", "c"])
    assert table.splitlines()[1].split() == ["fight", "1.0000", "0.7500", "0.8571", "4"]
    assert len(table.splitlines()) == 3  # c: no video, no prediction, no line


def test_results_are_named_per_subset_like_kenshohara(tmp_path):
    probs = SCORES.astype(np.float32)[:2]
    for subset, expected in (("validation", "val.json"), ("training", "train.json"), ("testing", "test.json")):
        config = {"result_path": str(tmp_path), "output_topk": 2, "inference_subset": subset}
        cm = evaluation.write_outputs(config, Scores(["v1", "v2"], np.array([1, 0]), ["a", "b", "c"], probs, probs),
                                      "rgb")
        assert (tmp_path / expected).is_file()
        assert cm.sum() == 2
    assert sorted(p.name for p in tmp_path.glob("scores_*")) == ["scores_rgb.npz", "scores_rgb_test.npz",
                                                               "scores_rgb_train.npz"]
