"""`python -m convert.compare`: the per-layer report passes identical models and points at a broken layer."""
import re
import subprocess
import sys

import numpy as np

from convert.compare import BROKEN_EPSILON, capture_layers, compare_layers, format_table, random_state
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
    assert "unmatched layers: 0" in report and re.search(rf"all {len(names)} layers within tolerance", report)
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


def test_a_wrong_epsilon_in_paddle_code_is_pinpointed(monkeypatch):
    """--break changes the weights; here the fault is in the backend: Paddle runs one BatchNorm with another
    epsilon, as a port that forgot a layer's eps would. Both run in this process: no MindSpore, no start-ups."""
    from backends.paddle import interop

    load = interop.load_numpy_state

    def load_into_a_broken_model(model, state):
        load(model, state)
        dict(model.named_sublayers())["layer2.1.bn1"]._epsilon += BROKEN_EPSILON

    monkeypatch.setattr(interop, "load_numpy_state", load_into_a_broken_model)
    kwargs = dict(n_classes=5, widen_factor=0.125)
    state = random_state("resnet18", **kwargs)
    clip = np.random.default_rng(0).standard_normal((1, 3, 5, 33, 37)).astype(np.float32)
    comparison = compare_layers(capture_layers("torch", "resnet18", kwargs, state, clip),
                                capture_layers("paddle", "resnet18", kwargs, state, clip), 1e-4)
    assert not comparison.passed and not comparison.only_reference and not comparison.only_other
    failed = [row.name for row in comparison.rows if not row.passed]
    assert failed[0] == "layer2.1.bn1" and len(comparison.rows) - len(failed) > 20
    assert "first layer over tolerance: layer2.1.bn1 " in format_table("torch", "paddle", comparison, 1e-4)


def test_mindspore_layers_are_captured_and_compared():
    code, report = compare("--arch", "i3d", "--backends", "torch", "mindspore", "--input-size", "9", "33", "37",
                           "--widen-factor", "0.125", "--break", "Mixed_4c.b1b.conv3d")
    assert code == 1
    names = layer_names(report)
    # MindSpore's inner bn2d cell has no torch counterpart and is left out.
    assert "Mixed_3b.b0.bn" in names and not any(name.endswith("bn2d") for name in names)
    assert "unmatched layers: 0" in report
    assert "first layer over tolerance: Mixed_4c.b1b.conv3d " in report


def test_a_kenshohara_checkpoint_gives_arch_and_weights(tmp_path):
    import torch

    from tests.community import write_kenshohara_pth

    path = str(tmp_path / "r3d18_K_200ep.pth")
    model = write_kenshohara_pth(path, "resnet18", n_classes=7, data_parallel=True, seed=3, widen_factor=0.125,
                                 shortcut_type="A")
    code, report = compare("--weights", path, "--backends", "torch", "paddle", "--input-size", "5", "33", "37")
    assert code == 0, report
    assert "unmatched layers: 0" in report and re.search(r"all \d+ layers within tolerance", report)
    names = layer_names(report)
    # Shortcut A: a parameter-free zero-padding shortcut where B has a conv and a BatchNorm.
    assert "layer4.1.conv2" in names and "layer2.0.downsample" in names and "layer2.0.downsample.0" not in names
    # The file's weights, not random ones: the report's logits are those of the model written.
    clip = np.random.default_rng(0).standard_normal((1, 3, 5, 33, 37)).astype(np.float32)
    with torch.no_grad():
        logits = model(torch.from_numpy(clip)).numpy()
    output = next(line.split() for line in report.splitlines() if line.startswith("output "))
    assert output[1:3] == ["(1,", "7)"] and np.isclose(float(output[3]), np.abs(logits).max(), rtol=1e-3)


def test_layers_on_one_side_only_are_counted_named_and_fail():
    layer = np.ones((1, 2), np.float32)
    comparison = compare_layers([("conv1", layer), ("bn1", layer), ("fc", layer)],
                                [("conv1", layer), ("fc", layer), ("fc.extra", layer)], 1e-4)
    assert [row.name for row in comparison.rows] == ["conv1", "fc"] and all(row.passed for row in comparison.rows)
    assert (comparison.only_reference, comparison.only_other, comparison.passed) == (["bn1"], ["fc.extra"], False)
    report = format_table("torch", "paddle", comparison, 1e-4)
    assert "unmatched layers: 2; only in torch: bn1; only in paddle: fc.extra" in report
    assert report.endswith("all 2 matched layers within tolerance, but not every layer has a counterpart")
