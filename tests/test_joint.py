"""I3D RGB + flow joint evaluation in every backend, each in its own processes through the real CLIs:
a tiny RGB I3D and a tiny flow I3D are trained, `evaluate --mode joint` scores both and their fusion,
and `python -m core.fuse` fuses score files written by two different backends."""
import json

import numpy as np
import pytest

from backends import BACKENDS
from core.fuse import accuracies, accuracy_table, fuse
from core.scores import Scores, load_scores
from tests.test_flow_training import config_args, make_flow_dataset, run, train

CLASSES = ["MoveLeft", "MoveRight"]


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    return make_flow_dataset(tmp_path_factory.mktemp("joint_data"))


@pytest.fixture(scope="module")
def joint_results(data, tmp_path_factory):
    """backend -> (result folder of its joint evaluation, stdout); each backend runs once per module."""
    done = {}

    def evaluate_joint(framework):
        if framework not in done:
            root = tmp_path_factory.mktemp(framework)
            rgb, flow = train(framework, data, root / "rgb", "rgb"), train(framework, data, root / "flow", "flow")
            stdout = run(f"backends.{framework}.evaluate", *config_args(data, root / "joint"), "--mode", "joint",
                         "--resume_path", rgb, "--flow_resume_path", flow)
            done[framework] = root / "joint", stdout
        return done[framework]
    return evaluate_joint


def assert_same_scores(actual, expected):
    assert actual.video_ids == expected.video_ids and actual.class_names == expected.class_names
    np.testing.assert_array_equal(actual.labels, expected.labels)
    np.testing.assert_array_equal(actual.logits, expected.logits)
    np.testing.assert_array_equal(actual.probs, expected.probs)


@pytest.mark.parametrize("framework", BACKENDS)
def test_joint_evaluation(joint_results, framework):
    out, stdout = joint_results(framework)
    rgb, flow, joint = (load_scores(out / f"scores_{tag}.npz") for tag in ("rgb", "flow", "joint"))
    # The 8 validation videos, in annotation order, with their labels and both models' own scores.
    assert rgb.video_ids == flow.video_ids and len(rgb.video_ids) == 8 and rgb.class_names == CLASSES
    assert rgb.labels.tolist() == [0] * 4 + [1] * 4
    for scores in (rgb, flow):
        assert np.isfinite(scores.logits).all()
        np.testing.assert_allclose(scores.probs.sum(axis=1), 1, rtol=1e-5)
    assert not np.allclose(rgb.logits, flow.logits)
    # The joint scores are exactly core.fuse.fuse of the two saved files.
    assert_same_scores(joint, fuse(rgb, flow, "softmax"))
    # The printed table: RGB, flow and joint accuracy side by side, as computed from the saved files.
    table = {"rgb": accuracies(rgb), "flow": accuracies(flow), "joint (softmax)": accuracies(joint)}
    assert "8 videos of 'validation'\n" + accuracy_table(table) in stdout
    for accuracy in table.values():
        assert all(0 <= value <= 1 for value in accuracy.values())
    with open(out / "val_joint.json") as f:
        results = json.load(f)["results"]
    assert [results[v][0]["label"] for v in joint.video_ids] == [CLASSES[i] for i in joint.probs.argmax(axis=1)]


def test_joint_evaluation_can_sum_logits(joint_results, data, tmp_path):
    out, _ = joint_results("torch")
    stdout = run("backends.torch.evaluate", *config_args(data, tmp_path), "--mode", "joint", "--fusion", "logits",
                 "--resume_path", out.parent / "rgb" / "save_1.pth",
                 "--flow_resume_path", out.parent / "flow" / "save_1.pth")
    rgb, flow = load_scores(out / "scores_rgb.npz"), load_scores(out / "scores_flow.npz")
    joint = load_scores(tmp_path / "scores_joint.npz")
    assert_same_scores(joint, fuse(rgb, flow, "logits"))
    assert not np.allclose(joint.probs, fuse(rgb, flow, "softmax").probs)
    assert accuracy_table({"rgb": accuracies(rgb), "flow": accuracies(flow),
                           "joint (logits)": accuracies(joint)}) in stdout


def test_fuse_cli_across_backends(joint_results, data, tmp_path):
    rgb_file = joint_results("torch")[0] / "scores_rgb.npz"
    flow_file = joint_results("paddle")[0] / "scores_flow.npz"
    stdout = run("core.fuse", rgb_file, flow_file, "--annotation", data / "annotations" / "ucf101_01.json",
                 "--method", "logits", "--output", tmp_path / "joint.npz")
    rgb, flow = load_scores(rgb_file), load_scores(flow_file)
    expected = fuse(rgb, flow, "logits")
    assert_same_scores(load_scores(tmp_path / "joint.npz"), expected)
    table = {"rgb": accuracies(rgb), "flow": accuracies(flow), "joint (logits)": accuracies(expected)}
    assert stdout == "8 videos of 'validation'\n" + accuracy_table(table) + "\n"


def test_accuracies_leave_out_videos_without_labels():
    probs = np.array([[0.9, 0.1], [0.2, 0.8], [0.6, 0.4]], np.float32)
    scores = Scores(["a", "b", "c"], np.array([0, -1, 1]), CLASSES, np.log(probs), probs)
    # a is right, c is wrong; b (testing subset, label -1) counts neither way.
    assert accuracies(scores) == {"top1": 0.5, "top5": 1.0, "mean_class": 0.5}
    unlabelled = Scores(["b"], np.array([-1]), CLASSES, np.log(probs[1:2]), probs[1:2])
    assert all(np.isnan(value) for value in accuracies(unlabelled).values())
