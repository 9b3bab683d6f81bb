"""python -m core.eval_accuracy: kenshohara's semantics and printed lines on a made-up pair of files."""
import json
import subprocess
import sys

import pytest

from tests.conftest import ROOT

GROUND_TRUTH = {
    "labels": ["a", "b", "c"],
    "database": {
        "v1": {"subset": "validation", "annotations": {"label": "a", "segment": [1, 11]}},
        "v2": {"subset": "validation", "annotations": {"label": "b", "segment": [1, 11]}},
        "v3": {"subset": "validation", "annotations": {"label": "c", "segment": [1, 11]}},
        "v4": {"subset": "validation", "annotations": {"label": "a", "segment": [1, 11]}},
        "t1": {"subset": "training", "annotations": {"label": "a", "segment": [1, 11]}},
    },
}
# v1 right at top-1; v2 right at top-2 (scores listed out of order); v3 wrong; v4 absent.
RESULTS = {"results": {
    "v1": [{"label": "a", "score": 0.6}, {"label": "b", "score": 0.3}],
    "v2": [{"label": "b", "score": 0.2}, {"label": "c", "score": 0.7}],
    "v3": [{"label": "a", "score": 0.5}, {"label": "b", "score": 0.4}],
}}


@pytest.fixture
def files(tmp_path):
    ground_truth, results = tmp_path / "gt.json", tmp_path / "out" / "val.json"
    results.parent.mkdir()
    ground_truth.write_text(json.dumps(GROUND_TRUTH))
    results.write_text(json.dumps(RESULTS))
    return str(ground_truth), str(results)


def run(*args):
    return subprocess.run([sys.executable, "-m", "core.eval_accuracy", *args], cwd=ROOT,
                          capture_output=True, text=True, check=True).stdout


def test_printed_output_matches_the_reference(files):
    assert run(*files, "-k", "1").splitlines() == [
        "load ground truth", "number of ground truth: 4", "load result", "number of result: 3",
        "calculate top-1 accuracy", "top-1 accuracy: 0.25"]


def test_top2_and_ignore(files, tmp_path):
    from core.eval_accuracy import main
    assert main([*files, "-k", "2"]) == 0.5
    # --ignore drops v4 (absent from the results) from the denominator: 2 of 3.
    assert main([*files, "-k", "2", "--ignore", "--save"]) == pytest.approx(2 / 3)
    assert (tmp_path / "out" / "top2.txt").read_text() == str(2 / 3)
    # Without --ignore the missing training video counts as wrong; with it nothing is left to evaluate.
    assert main([*files, "--subset", "training"]) == 0.0
    with pytest.raises(SystemExit, match="no 'training' video"):
        main([*files, "--subset", "training", "--ignore"])


def test_errors_name_the_file(files, tmp_path):
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"results": {"v1": [{"label": "zebra", "score": 1.0}]}}))
    result = subprocess.run([sys.executable, "-m", "core.eval_accuracy", files[0], str(bad)], cwd=ROOT,
                            capture_output=True, text=True)
    assert result.returncode != 0 and "bad.json" in result.stderr and "zebra" in result.stderr
