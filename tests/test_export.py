"""Deployment: every family exports to every target and the exported file computes the checkpoint's logits.

One worker process per framework does all of its exports, another all of its runs (MindSpore's graph
compilation on CPU is slow: grouping keeps the file well under a minute), as `python -m convert.export`
does for one file. The references are the source checkpoints run in their own frameworks.
"""
import os
import subprocess
import sys

import numpy as np
import pytest

from convert import Checkpoint, write_checkpoint
from convert.compare import random_state
from convert.export import TARGETS, clip_shape_from, compare, main as export_main, run_jobs, seeded_clip
from convert.verify import run_model
from tests.community import narrow, write_kenshohara_pth

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
N_CLASSES = 5
# family -> (arch, source checkpoint name, clip shape); I3D at odd sizes, where TF "same" padding is uneven.
# (The other depths and variants of each family share their family's layers: tests.export_matrix runs them all.)
FAMILIES = {"resnet": ("resnet10", "r3d10.pth", (3, 8, 32, 32)),
            "r2plus1d": ("r2plus1d_18", "r2p1d18.pdparams", (3, 8, 32, 32)),
            "i3d": ("i3d", "i3d_zoo.ckpt", (3, 9, 33, 37)),
            # kenshohara's other families (ResNeXt also builds the Wide ResNet) and kylemin's S3D.
            "preresnet": ("preresnet10", "preresnet10.npz", (3, 8, 32, 32)),
            "resnext": ("resnext50", "resnext50.npz", (3, 8, 32, 32)),
            "densenet": ("densenet121", "densenet121.npz", (3, 16, 32, 32)),  # time halves four times
            "s3d": ("s3d", "s3d.npz", (3, 8, 32, 32)),
            # MMAction2's I3D-ResNet and CSN; TSN's two backbones on 3 segments (BN-Inception: sizes of 32k).
            "i3d_resnet": ("i3d_resnet50", "i3d_resnet50.npz", (3, 8, 32, 32)),
            "csn": ("ip_csn_50", "ip_csn_50.npz", (3, 8, 32, 32)),
            "tsn_resnet": ("tsn_resnet50", "tsn_resnet50.npz", (3, 3, 32, 32)),
            "tsn_bninception": ("tsn_bninception", "tsn_bninception.npz", (3, 3, 32, 32))}
WIDEN_FACTOR = 0.125
N_CLIPS = 3
# MindSpore's compiler folds I3D's padding only with a static shape: fixed batch there (README).
FIXED_BATCH = {("i3d", ".mindir"): N_CLIPS, ("s3d", ".mindir"): N_CLIPS}
FIXED_BATCH_ONNX = 2  # one more ONNX file with a fixed batch, run on N_CLIPS clips in chunks


def _write_sources(directory):
    paths = {family: str(directory / name) for family, (_, name, _) in FAMILIES.items()}
    write_kenshohara_pth(paths["resnet"], "resnet10", N_CLASSES, data_parallel=True, widen_factor=WIDEN_FACTOR)
    for family in FAMILIES:
        if family != "resnet":
            arch = FAMILIES[family][0]
            state = random_state(arch, seed=1, n_classes=N_CLASSES, **narrow(arch, WIDEN_FACTOR))
            write_checkpoint(paths[family], Checkpoint(state, arch, {}),
                             layout="ms-zoo-i3d" if family == "i3d" else "neutral")
    return paths


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    """{(family, extension): (exported logits, source logits)}, the exported paths, and the failures."""
    directory = tmp_path_factory.mktemp("export")
    sources = _write_sources(directory)
    exports, runs, outputs = {}, {}, {}
    for family, (_, _, clip_shape) in FAMILIES.items():
        clip_path = str(directory / f"{family}_clip.npy")
        np.save(clip_path, seeded_clip(clip_shape, N_CLIPS))
        for extension, (exporter, runner) in TARGETS.items():
            dst = str(directory / f"{family}{extension}")
            batch = FIXED_BATCH.get((family, extension), "dynamic")
            exports.setdefault(exporter, []).append(dict(export=dst, checkpoint=sources[family],
                                                         clip_shape=list(clip_shape), batch=batch))
            outputs[family, extension] = str(directory / f"{family}{extension}.npy")
            runs.setdefault(runner, []).append(dict(run=dst, input=clip_path, output=outputs[family, extension]))
    fixed_onnx = str(directory / "resnet_batch2.onnx")
    exports["torch"].append(dict(export=fixed_onnx, checkpoint=sources["resnet"],
                                 clip_shape=list(FAMILIES["resnet"][2]), batch=FIXED_BATCH_ONNX))
    # Last MindSpore job, expected to fail: I3D with a dynamic batch (the worker stops at it).
    exports["mindspore"].append(dict(export=str(directory / "i3d_dynamic.mindir"), checkpoint=sources["i3d"],
                                     clip_shape=list(FAMILIES["i3d"][2]), batch="dynamic"))
    failures = {}
    for backend, jobs in exports.items():
        try:
            run_jobs(backend, jobs, str(directory))
        except RuntimeError as error:
            failures[backend] = str(error)
    for runner, jobs in runs.items():
        run_jobs(runner, jobs, str(directory))
    results = {}
    for family in FAMILIES:
        clip_path = str(directory / f"{family}_clip.npy")
        source = run_model(sources[family], clip_path, str(directory / f"{family}_source.npy"))
        for extension in TARGETS:
            results[family, extension] = (np.load(outputs[family, extension]), source)
    return dict(results=results, failures=failures, fixed_onnx=fixed_onnx, directory=directory)


@pytest.mark.parametrize("family", FAMILIES)
@pytest.mark.parametrize("extension", TARGETS)
def test_exported_model_computes_the_checkpoint_logits(exported, family, extension):
    target, source = exported["results"][family, extension]
    assert target.shape == source.shape == (N_CLIPS, N_CLASSES)
    verification = compare(source, target, tolerance=1e-4)
    print(f"{family} {extension}: max abs {verification.max_abs:.3g}, max rel {verification.max_rel:.3g}")
    assert verification.max_rel < 1e-4
    assert verification.passed
    # Logits of order 1 (not a degenerate model whose outputs all vanish).
    assert np.abs(source).max() > 0.05


def test_mindspore_names_the_layer_when_i3d_cannot_export_with_a_dynamic_batch(exported):
    message = exported["failures"]["mindspore"]
    assert set(exported["failures"]) == {"mindspore"}
    assert "i3d_dynamic.mindir: mindspore cannot export i3d" in message
    assert "backends/mindspore/models/i3d.py" in message and "same_padding" in message  # the layer's code
    assert "graph mode" in message  # MindSpore's own words
    assert "--batch N" in message


def test_onnx_predictor_imports_no_training_framework(exported):
    """The .onnx path runs with onnxruntime and numpy only; a fixed-batch file is run in padded chunks."""
    directory = exported["directory"]
    clip_path = str(directory / "resnet_clip.npy")
    script = (
        "import sys, numpy as np\n"
        "from core.onnx_predictor import build_onnx_predictor\n"
        f"clips = np.load({clip_path!r})\n"
        f"np.save(sys.argv[2], build_onnx_predictor(sys.argv[1])(clips))\n"
        "loaded = sorted(m for m in sys.modules if m.split('.')[0] in ('torch', 'paddle', 'mindspore'))\n"
        "assert not loaded, loaded\n"
        "assert 'onnxruntime' in sys.modules\n"
    )
    for model in (str(directory / "resnet.onnx"), exported["fixed_onnx"]):
        logits_path = str(directory / "predictor_logits.npy")
        result = subprocess.run([sys.executable, "-c", script, model, logits_path], cwd=ROOT, capture_output=True,
                                text=True)
        assert result.returncode == 0, result.stderr[-2000:]
        _, source = exported["results"]["resnet", ".onnx"]
        assert compare(source, np.load(logits_path), 1e-4).max_rel < 1e-4, model


def test_onnx_predictor_refuses_another_clip_shape(exported):
    from core.onnx_predictor import build_onnx_predictor
    path = str(exported["directory"] / "resnet.onnx")
    with pytest.raises(ValueError, match=r"expects clips of shape \(batch, 3, 8, 32, 32\), got \(1, 3, 8, 40, 40\)"):
        build_onnx_predictor(path)(np.zeros((1, 3, 8, 40, 40), np.float32))


def test_cli_verify_prints_the_differences_and_fails_above_tolerance(exported, tmp_path, capsys):
    """Exported ONNX differs from torch by rounding (about 1e-7 relative): under 1e-4, over a 1e-12 tolerance."""
    source = str(exported["directory"] / "r3d10.pth")
    with pytest.raises(SystemExit, match="does not compute what"):
        export_main([source, str(tmp_path / "r3d10.onnx"), "--shape", "3", "8", "32", "32", "--verify",
                     "--tolerance", "1e-12"])
    printed = capsys.readouterr().out
    assert "exported" in printed and "verify: max abs difference" in printed
    relative = float(printed.split("max relative difference ")[1].split()[0])
    assert 1e-12 < relative < 1e-4


def test_cli_errors_are_one_line(tmp_path):
    def run(*args):
        return subprocess.run([sys.executable, "-m", "convert.export", *args], cwd=ROOT, capture_output=True,
                              text=True)
    result = run(str(tmp_path / "missing.pth"), str(tmp_path / "x.onnx"))
    assert result.returncode == 1 and "Traceback" not in result.stderr
    assert "missing.pth" in result.stderr
    result = run(str(tmp_path / "missing.pth"), str(tmp_path / "x.engine"))
    assert result.returncode == 1 and "cannot tell the export target from the extension '.engine'" in result.stderr


def test_clip_shape_comes_from_shape_else_the_config(tmp_path):
    config = tmp_path / "flow.yaml"
    config.write_text("model: i3d\nmodality: flow\nsample_duration: 8\nsample_size: 40\n")
    assert clip_shape_from(None, str(config)) == (2, 8, 40, 40)
    assert clip_shape_from([3, 9, 33, 37], str(config)) == (3, 9, 33, 37)
    assert clip_shape_from(None, None) == (3, 16, 112, 112)  # the config defaults
    with pytest.raises(ValueError, match="four positive sizes"):
        clip_shape_from([3, 0, 32, 32])
