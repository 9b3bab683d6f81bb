"""`python -m convert.compare`: the per-layer report passes identical models and points at a broken layer."""
import re
import subprocess
import sys

from tests.parity.run_backend import ROOT


def compare(*args):
    result = subprocess.run([sys.executable, "-m", "convert.compare", *args], cwd=ROOT, capture_output=True,
                            text=True)
    return result.returncode, result.stdout


def layer_names(report):
    return [line.split()[0] for line in report.splitlines()[2:] if re.match(r"^\S+\s+\(", line)]


def test_identical_weights_pass_and_layers_come_in_execution_order():
    code, report = compare("--arch", "resnet18", "--backends", "torch", "paddle", "--input-size", "5", "33", "37",
                           "--widen-factor", "0.125")
    assert code == 0, report
    names = layer_names(report)
    assert re.search(rf"all {len(names)} layers within tolerance", report)
    # Execution order: a block's layers before the block, the shortcut before the main branch, the head last.
    assert names[:4] == ["conv1", "bn1", "relu", "maxpool"]
    assert names.index("layer2.0.downsample.1") < names.index("layer2.0.conv1") < names.index("layer2.0")
    assert names.index("layer1.0.relu") < names.index("layer1.0.relu#2")
    assert names[-2:] == ["fc", "output"]


def test_a_wrong_batchnorm_epsilon_is_pinpointed():
    code, report = compare("--arch", "resnet18", "--backends", "torch", "paddle", "--input-size", "5", "33", "37",
                           "--widen-factor", "0.125", "--break", "layer2.1.bn1")
    assert code == 1
    assert "first layer over tolerance: layer2.1.bn1 " in report
    flagged = [line.split()[0] for line in report.splitlines() if line.endswith("<-- first divergence")]
    assert flagged == ["layer2.1.bn1"]
    names = layer_names(report)
    passed = names[:names.index("layer2.1.bn1")]
    assert len(passed) > 20 and not any(" over" in line for line in report.splitlines()
                                        if line.split() and line.split()[0] in passed)


def test_mindspore_layers_are_captured_and_compared():
    code, report = compare("--arch", "i3d", "--backends", "torch", "mindspore", "--input-size", "9", "33", "37",
                           "--widen-factor", "0.125", "--break", "Mixed_4c.b1b.conv3d")
    assert code == 1
    names = layer_names(report)
    # MindSpore's inner bn2d cell has no torch counterpart and is left out.
    assert "Mixed_3b.b0.bn" in names and not any(name.endswith("bn2d") for name in names)
    assert "first layer over tolerance: Mixed_4c.b1b.conv3d " in report
