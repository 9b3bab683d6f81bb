import json

import numpy as np
import pytest

from core.fuse import fuse, main
from core.scores import Scores, load_scores, save_scores

CLASSES = ["jump", "run", "swim"]


def scores(video_ids, labels, logits, class_names=CLASSES):
    logits = np.asarray(logits, np.float32)
    probs = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    return Scores(list(video_ids), np.asarray(labels), list(class_names), logits, probs.astype(np.float32))


def test_save_load_round_trip(tmp_path):
    path = tmp_path / "out" / "scores_rgb.npz"
    rgb = scores(["v1", "v2"], [2, -1], [[1, 2, 3], [0, 0, 5]])
    save_scores(path, rgb.video_ids, rgb.labels, rgb.class_names, rgb.logits, rgb.probs)
    assert sorted(p.name for p in path.parent.iterdir()) == ["scores_rgb.npz"]  # no temporary left
    loaded = load_scores(path)
    assert loaded.video_ids == ["v1", "v2"] and loaded.class_names == CLASSES
    assert loaded.labels.tolist() == [2, -1] and loaded.labels.dtype == np.int64
    np.testing.assert_array_equal(loaded.logits, rgb.logits)
    np.testing.assert_array_equal(loaded.probs, rgb.probs)
    with np.load(path, allow_pickle=False) as data:
        assert data["video_ids"].dtype.kind == "U"


def test_save_rejects_bad_shapes_and_load_names_the_file(tmp_path):
    with pytest.raises(ValueError, match=r"probs has shape \(2, 2\), expected \(2, 3\)"):
        save_scores(tmp_path / "s.npz", ["a", "b"], [0, 1], CLASSES, np.zeros((2, 3)), np.zeros((2, 2)))
    bad = tmp_path / "bad.npz"
    bad.write_bytes(b"not an npz")
    with pytest.raises(ValueError, match="bad.npz: cannot read"):
        load_scores(bad)


def test_fuse_softmax_and_logits_by_hand():
    rgb = Scores(["a", "b"], np.array([0, 1]), CLASSES, np.array([[2.0, 0.0, 0.0], [0.0, 1.0, 0.0]]),
                 np.array([[0.6, 0.3, 0.1], [0.2, 0.5, 0.3]]))
    # Flow lists the videos in the other order and does not know b's label.
    flow = Scores(["b", "a"], np.array([-1, 0]), CLASSES, np.array([[0.0, 0.0, 3.0], [1.0, 1.0, 0.0]]),
                  np.array([[0.1, 0.2, 0.7], [0.2, 0.7, 0.1]]))
    joint = fuse(rgb, flow, "softmax")
    assert joint.video_ids == ["a", "b"] and joint.labels.tolist() == [0, 1]
    np.testing.assert_allclose(joint.probs, [[0.4, 0.5, 0.1], [0.15, 0.35, 0.5]])
    np.testing.assert_allclose(joint.logits, [[3.0, 1.0, 0.0], [0.0, 1.0, 3.0]])

    joint = fuse(rgb, flow, "logits")
    e = np.exp(1.0)
    z = np.exp(3.0) + e + 1
    np.testing.assert_allclose(joint.probs[0], [np.exp(3.0) / z, e / z, 1 / z], rtol=1e-6)
    assert joint.probs.argmax(axis=1).tolist() == [0, 2]  # softmax fusion picked 'run' for a


def test_fuse_errors():
    rgb = scores(["a", "b", "c"], [0, 1, 2], np.zeros((3, 3)))
    with pytest.raises(ValueError, match="only in RGB: c; only in flow: d"):
        fuse(rgb, scores(["a", "b", "d"], [0, 1, 2], np.zeros((3, 3))))
    other = scores(["a", "b", "c"], [0, 1, 2], np.zeros((3, 3)))
    other.class_names = ["jump", "walk", "swim"]
    with pytest.raises(ValueError, match="1: 'run' vs 'walk'"):
        fuse(rgb, other)
    with pytest.raises(ValueError, match="disagree on the labels of b"):
        fuse(rgb, scores(["a", "b", "c"], [0, 2, 2], np.zeros((3, 3))))
    with pytest.raises(ValueError, match="unknown fusion method"):
        fuse(rgb, rgb, "max")


def test_cli_prints_rgb_flow_and_joint(tmp_path, capsys):
    classes = ["jump", "run", "swim", "walk", "climb", "dive"]  # six, so that top-5 can miss
    database = {"v1": "jump", "v2": "run", "v3": "run", "v4": "swim", "v9": "swim"}
    annotation = {"labels": classes, "database": {
        video_id: {"subset": "validation", "annotations": {"label": label, "segment": [1, 11]}}
        for video_id, label in database.items()}}
    annotation["database"]["t1"] = {"subset": "training", "annotations": {"label": "jump", "segment": [1, 11]}}
    (tmp_path / "ann.json").write_text(json.dumps(annotation))
    ids = ["v1", "v2", "v3", "v4", "t1"]  # v9 has no scores; t1 is not in the subset
    # RGB: v1, v2 right; v3 'run' 5th; v4 'swim' last (top-5 miss). Confident only where right.
    rgb = scores(ids, [-1] * 5, [[5, 0, 0, 0, 0, 0], [0, 5, 0, 0, 0, 0], [1, 0, 0, .5, .5, .5],
                                 [0, 1, -1, 0, 0, 0], [0] * 6], classes)
    # Flow: v3, v4 right (confident); v1, v2 second.
    flow = scores(ids, [-1] * 5, [[0, 1, 0, 0, 0, 0], [1, 0, 0, 0, 0, 0], [0, 5, 0, 0, 0, 0],
                                  [0, 0, 5, 0, 0, 0], [0] * 6], classes)
    for name, s in (("rgb", rgb), ("flow", flow)):
        save_scores(tmp_path / f"{name}.npz", s.video_ids, s.labels, s.class_names, s.logits, s.probs)
    status = main([str(tmp_path / "rgb.npz"), str(tmp_path / "flow.npz"), "--annotation", str(tmp_path / "ann.json"),
                   "--output", str(tmp_path / "fused.npz"), "--val-json", str(tmp_path / "val.json")])
    assert status == 0
    out = capsys.readouterr()
    lines = out.out.splitlines()
    assert lines[0] == "4 videos of 'validation'"
    # top-1 2/4, top-5 3/4; per class: jump 1/1, run 1/2, swim 0/1 -> mean 0.5
    assert lines[2].split() == ["rgb", "0.5000", "0.7500", "0.5000"]
    # top-1 2/4, top-5 4/4; per class: jump 0/1, run 1/2, swim 1/1 -> mean 0.5
    assert lines[3].split() == ["flow", "0.5000", "1.0000", "0.5000"]
    assert lines[4].split() == ["joint", "(softmax)", "1.0000", "1.0000", "1.0000"]
    assert "1 labelled videos of 'validation' have no scores and are left out: v9" in out.err
    fused = load_scores(tmp_path / "fused.npz")
    assert fused.video_ids == ["v1", "v2", "v3", "v4"] and fused.labels.tolist() == [0, 1, 1, 2]
    # v3: run (.103 + .967) / 2, jump (.281 + .007) / 2, walk = climb = dive (.171 + .007) / 2, ...
    results = json.loads((tmp_path / "val.json").read_text())["results"]
    assert [r["label"] for r in results["v3"]] == ["run", "jump", "walk", "climb", "dive"]
    assert results["v3"][0]["score"] == pytest.approx(0.535, abs=1e-3)


def test_cli_rejects_other_classes(tmp_path, capsys):
    (tmp_path / "ann.json").write_text(json.dumps({"labels": ["a", "b", "c"], "database": {}}))
    s = scores(["v1"], [0], [[1, 2, 3]])
    save_scores(tmp_path / "s.npz", s.video_ids, s.labels, s.class_names, s.logits, s.probs)
    with pytest.raises(SystemExit) as exit_info:
        main([str(tmp_path / "s.npz"), str(tmp_path / "s.npz"), "--annotation", str(tmp_path / "ann.json")])
    assert exit_info.value.code == 2
    assert "labels that differ from the 3 class names" in capsys.readouterr().err
