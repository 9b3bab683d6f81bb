"""Training, resume, fine-tuning and evaluation in the three backends (core.training + backends/*/engine.py).

The CLI runs each backend in its own process, as a user would. The data is tests/_training_data.py's
colour task (3 classes, 4 training and 2 validation videos each, 8 frames of 32 px): easy on purpose,
so that 5 epochs of a ResNet-10 of width 1/8 reach full validation accuracy and the tests can say
that training works, not only that it runs.
"""
import json
import os
import subprocess
import sys
import types

import numpy as np
import pytest

from backends import BACKENDS, load, native_format
from core.checkpoints import read_checkpoint, read_state
from core.class_names import read_checkpoint_meta
from core.cli import train_main
from core.config import ConfigError, load_config
from core.engine import ResumeError
from core.result_path import CheckpointWriteError
from core.state_dict import StateDictMismatch
from core.training import LRSchedule, atomic_write, fit, read_log
from tests._training_data import CLASSES, tiny_config, write_colour_dataset
from tests.community import write_kenshohara_pth, write_piergiaj_pt
from tests.conftest import ROOT

FRAMEWORKS = BACKENDS
SUFFIX = {name: f".{native_format(name)}" for name in BACKENDS}
SIDECARS = {"torch": (), "paddle": (".pdopt", ".json"), "mindspore": ()}
N_EPOCHS = 5
# The reference run: lr 0.005, x0.1 after epoch 4, a checkpoint every 2 epochs and at the end.
REFERENCE = {"learning_rate": 0.005, "multistep_milestones": [4], "n_epochs": N_EPOCHS, "checkpoint": 2}


def run_cli(framework, tool, config, *options):
    command = [sys.executable, "-m", f"backends.{framework}.{tool}", "--config", str(config), *options]
    done = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, f"{' '.join(command)} failed:\n{done.stdout}\n{done.stderr[-3000:]}"
    return done.stdout


def checkpoint(result, framework, epoch):
    return os.path.join(result, f"save_{epoch}{SUFFIX[framework]}")


def weights(framework, path):
    return read_state(path)


def engine_class(framework):
    return load(framework, "engine").Engine


def read_meta(framework, path):
    """(epoch, arch, config) of a training checkpoint, read with the framework's own loader."""
    if framework == "torch":
        import torch
        saved = torch.load(path, weights_only=True)
        assert set(saved) == {"epoch", "arch", "state_dict", "optimizer", "scheduler", "config", "class_names"}
        return saved["epoch"], saved["arch"], saved["config"]
    if framework == "paddle":
        with open(path[: -len(".pdparams")] + ".json") as f:
            saved = json.load(f)
        return saved["epoch"], saved["arch"], saved["config"]
    import mindspore as ms
    saved = ms.load_checkpoint(path)
    assert any(name.startswith("optimizer.moments.") or name.startswith("optimizer.accum.") for name in saved)
    return int(saved["epoch"]), saved["arch"], json.loads(saved["config"])


def log_rows(result, name):
    """Rows of train.log / val.log without the wall-clock time column."""
    return [{k: v for k, v in row.items() if k != "time"} for row in read_log(os.path.join(result, name))]


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    root = tmp_path_factory.mktemp("colours")
    write_colour_dataset(str(root))
    return root


@pytest.fixture(scope="module")
def reference_run(data):
    """framework -> result folder of the uninterrupted 5-epoch CLI run, trained on first use."""
    runs = {}

    def get(framework):
        if framework not in runs:
            result = data / f"{framework}_full"
            run_cli(framework, "train", tiny_config(str(data), result, **REFERENCE))
            runs[framework] = str(result)
        return runs[framework]

    return get


def test_evaluate_parses_the_annotation_once_and_names_an_empty_subset(data, reference_run, tmp_path, monkeypatch):
    from core import datasets
    from core.cli import evaluate_main
    config = tiny_config(str(data), tmp_path / "eval", **REFERENCE)
    annotation, frames = (load_config(config, (), ())[key] for key in ("annotation_path", "video_path"))
    resume = checkpoint(reference_run("torch"), "torch", N_EPOCHS)
    parsed, parse = [], datasets.json.load
    monkeypatch.setattr(datasets.json, "load", lambda f: parsed.append(f.name) or parse(f))
    scores, video = evaluate_main("torch", "backends.torch.engine", ["--config", config, "--resume_path", resume])
    assert len(scores.video_ids) == 6 and video["top1"] >= 5 / 6
    # The checks (classes of the head and of the checkpoint) and the evaluation set share one parse.
    assert parsed.count(annotation) == 1
    with pytest.raises(SystemExit) as error:
        evaluate_main("torch", "backends.torch.engine", ["--config", config, "--resume_path", resume,
                                                         "--subset", "testing"])
    assert str(error.value) == f"annotation error: {annotation}: no 'testing' video with frames under {frames}"


@pytest.mark.parametrize("framework", FRAMEWORKS)
def test_training_learns_and_evaluate_writes_results(framework, data, reference_run):
    result = reference_run(framework)
    rows = read_log(os.path.join(result, "train.log"))
    assert [int(r["epoch"]) for r in rows] == [1, 2, 3, 4, 5]
    assert [float(r["lr"]) for r in rows] == pytest.approx([0.005] * 4 + [0.0005])
    assert float(rows[-1]["loss"]) < 0.5 * float(rows[0]["loss"])

    # Checkpoints every 2 epochs, at the end and of the best validation epoch, with their sidecars, and nothing
    # half-written left.
    expected = {f"save_{e}{ext}" for e in (2, 4, 5, "best") for ext in (SUFFIX[framework],) + SIDECARS[framework]}
    files = set(os.listdir(result))
    assert {f for f in files if f.startswith("save_")} == expected
    assert not [f for f in files if f.startswith(".tmp")]
    assert {"train.log", "val.log", "curves.png", "opts.yaml"} <= files
    epoch, arch, config = read_meta(framework, checkpoint(result, framework, 4))
    assert (epoch, arch, config["n_epochs"], config["n_classes"]) == (4, "resnet10", N_EPOCHS, 3)
    # The label list travels in every format, read without the framework (core.class_names).
    assert read_checkpoint_meta(checkpoint(result, framework, 4))["class_names"] == list(CLASSES)
    best_epoch = max(read_log(os.path.join(result, "val.log")), key=lambda r: float(r["acc"]))["epoch"]
    assert read_meta(framework, os.path.join(result, f"save_best{SUFFIX[framework]}"))[0] == int(best_epoch)

    # Evaluation of the last checkpoint on the 6 validation videos (chance: 1/3).
    evaluated = data / f"{framework}_eval"
    out = run_cli(framework, "evaluate", tiny_config(str(data), evaluated, **REFERENCE),
                  "--resume_path", checkpoint(result, framework, N_EPOCHS))
    for text in ("clip top-1", "video top-1", "mean class", "precision"):
        assert text in out
    assert "top-5" not in out  # 3 classes: top-5 would always be 1
    with open(evaluated / "val.json") as f:
        results = json.load(f)["results"]
    assert len(results) == 6
    for video_id, top in results.items():
        assert [t["label"] for t in top] and sorted(t["label"] for t in top) == sorted(CLASSES)
        assert [t["score"] for t in top] == sorted((t["score"] for t in top), reverse=True)
        assert sum(t["score"] for t in top) == pytest.approx(1, abs=1e-4)
    correct = sum(top[0]["label"] in video_id for video_id, top in results.items())
    assert correct >= 5, results
    assert (evaluated / "scores_rgb.npz").is_file() and (evaluated / "confusion_rgb.png").is_file()
    assert np.load(evaluated / "scores_rgb.npz")["probs"].shape == (6, 3)


@pytest.mark.parametrize("framework", FRAMEWORKS)
def test_resume_continues_exactly(framework, data, reference_run):
    full = reference_run(framework)
    result = data / f"{framework}_resumed"
    run_cli(framework, "train", tiny_config(str(data), result, **{**REFERENCE, "n_epochs": 2}))
    out = run_cli(framework, "train", tiny_config(str(data), result, **REFERENCE),
                  "--set", f"resume_path={checkpoint(result, framework, 2)}")
    assert "resumed from" in out and "(epoch 2)" in out
    assert log_rows(result, "train.log") == log_rows(full, "train.log")
    assert log_rows(result, "val.log") == log_rows(full, "val.log")
    resumed, uninterrupted = (weights(framework, checkpoint(r, framework, N_EPOCHS)) for r in (result, full))
    assert resumed.keys() == uninterrupted.keys()
    for name in resumed:
        np.testing.assert_array_equal(resumed[name], uninterrupted[name], err_msg=name)
    if framework == "torch":  # the raw files too: BatchNorm counters and momentum buffers
        import torch
        resumed, uninterrupted = (torch.load(checkpoint(r, framework, N_EPOCHS), weights_only=True)
                                  for r in (result, full))
        assert int(resumed["state_dict"]["bn1.num_batches_tracked"]) == N_EPOCHS * 3  # 12 clips, batches of 4
        for part in ("state_dict", "optimizer"):
            flat_resumed, flat_uninterrupted = (_flat_tensors(saved[part]) for saved in (resumed, uninterrupted))
            assert flat_resumed.keys() == flat_uninterrupted.keys()
            for name in flat_resumed:
                assert torch.equal(flat_resumed[name], flat_uninterrupted[name]), name


def _flat_tensors(tree, prefix=""):
    """{'a.b.c': tensor} of the tensors in nested dicts (a state_dict, an optimizer's state)."""
    if not isinstance(tree, dict):
        return {prefix: tree} if hasattr(tree, "shape") else {}
    return {name: value for key, sub in tree.items() for name, value in _flat_tensors(sub, f"{prefix}{key}.").items()}


def test_resume_from_kenshohara_checkpoint_continues_at_its_epoch(data, tmp_path, capsys):
    import torch
    his = tmp_path / "ken.pth"  # arch 'resnet-10', epoch 1, SGD momentum buffers, MultiStepLR state
    written = write_kenshohara_pth(his, "resnet10", len(CLASSES), seed=5, widen_factor=0.125)
    result = tmp_path / "resumed"
    config = tiny_config(str(data), result, n_epochs=3, checkpoint=1, learning_rate=0.0005,
                         multistep_milestones=[2], no_val=True)
    train_main("torch", "backends.torch.engine", ["--config", config, "--set", f"resume_path={his}"])
    assert f"resumed from {his} (epoch 1)" in capsys.readouterr().out
    rows = read_log(result / "train.log")
    assert [(int(r["epoch"]), float(r["lr"])) for r in rows] == [(2, 0.0005), (3, 0.00005)]
    assert sorted(name for name in os.listdir(result) if not name.startswith("events.out.tfevents")) == \
        ["curves.png", "opts.yaml", "save_2.pth", "save_3.pth", "train.log"]
    saved = torch.load(result / "save_3.pth", weights_only=True)
    assert (saved["epoch"], saved["arch"]) == (3, "resnet10")
    # His counters (1000) went on by 2 epochs of 3 batches; his weights moved a little (a fresh
    # initialisation is 0.03 away on average), they were not re-initialised.
    assert int(saved["state_dict"]["bn1.num_batches_tracked"]) == 1006
    moved = np.abs(saved["state_dict"]["conv1.weight"].numpy() - written.conv1.weight.detach().numpy()).mean()
    assert 1e-6 < moved < 0.003


def test_resume_refuses_a_checkpoint_of_another_arch_cleanly(data, tmp_path):
    import torch
    config = tiny_config(str(data), tmp_path / "out", n_epochs=2, no_val=True)
    his = tmp_path / "ken.pth"
    write_kenshohara_pth(his, "resnet18", len(CLASSES), widen_factor=0.125)  # the config builds resnet10
    with pytest.raises(SystemExit) as error:
        train_main("torch", "backends.torch.engine", ["--config", config, "--set", f"resume_path={his}"])
    assert str(error.value).startswith(f"cannot train: checkpoint {his} does not fit the model:\n  unexpected keys (")
    assert "layer1.1.conv1.weight" in str(error.value)
    saved = torch.load(his, weights_only=True)
    torch.save({**saved, "arch": "resnet2p1d-10"}, his)  # an arch kenshohara's code has no model for
    with pytest.raises(SystemExit) as error:
        train_main("torch", "backends.torch.engine", ["--config", config, "--set", f"resume_path={his}"])
    assert str(error.value).startswith(f"cannot train: {his}: arch 'resnet2p1d-10' is not supported (known: ")


def test_n_classes_smaller_than_the_labels_is_refused_up_front(data, tmp_path):
    config = tiny_config(str(data), tmp_path / "out", n_classes=2)
    with pytest.raises(SystemExit) as error:
        train_main("torch", None, ["--config", config])  # refused before any engine is built
    assert str(error.value) == (f"config error: {config}: n_classes is 2, but {data / 'annotation.json'} has 3 "
                                "labels; set n_classes: 3")


@pytest.mark.parametrize("framework", FRAMEWORKS)
def test_wrong_n_pretrain_classes_lists_the_head_keys(framework, data, reference_run, tmp_path):
    pretrained = checkpoint(reference_run(framework), framework, N_EPOCHS)  # a head of 3 classes
    config = load_config(tiny_config(str(data), tmp_path / "ft", n_classes=4, pretrain_path=pretrained,
                                     n_pretrain_classes=5), (), ())
    with pytest.raises(StateDictMismatch) as error:
        engine_class(framework)(config)
    assert error.value.mis_shaped == [("fc.weight", (5, 64), (3, 64)), ("fc.bias", (5,), (3,))]
    assert f"{pretrained} (n_pretrain_classes: 5)" in str(error.value)


@pytest.mark.parametrize("framework", FRAMEWORKS)
def test_checkpoint_of_another_model_is_refused_naming_file_and_keys(framework, data, reference_run, tmp_path):
    path = checkpoint(reference_run(framework), framework, 2)
    config = load_config(tiny_config(str(data), tmp_path / "other", model_depth=18, n_classes=5), (), ())
    engine = engine_class(framework)(config)
    with pytest.raises(StateDictMismatch) as error:
        engine.load(path)
    assert path in str(error.value)
    assert "layer1.1.conv1.weight" in error.value.missing
    assert [name for name, _, _ in error.value.mis_shaped] == ["fc.weight", "fc.bias"]


@pytest.mark.parametrize("framework", FRAMEWORKS)
@pytest.mark.parametrize("ft_begin_module", ["layer4", "fc"])
def test_fine_tuning_replaces_head_and_trains_from_ft_begin_module(framework, ft_begin_module, data,
                                                                    reference_run, tmp_path, monkeypatch):
    import core.engine
    from core.datasets import training_set
    from core.loader import BatchLoader

    pretrained_path = checkpoint(reference_run(framework), framework, N_EPOCHS)
    config = load_config(tiny_config(str(data), tmp_path / "ft", n_classes=4, pretrain_path=pretrained_path,
                                     ft_begin_module=ft_begin_module, n_epochs=1, no_val=True, learning_rate=0.05),
                         (), ())
    to_numpy_state = load(framework, "interop").to_numpy_state
    reads = []
    monkeypatch.setattr(core.engine, "read_checkpoint", lambda path: reads.append(path) or read_checkpoint(path))
    engine = engine_class(framework)(config)
    # The file is read once: for the model and for the log's description of it.
    assert reads == [pretrained_path]
    assert engine.weights_report[1] == "head fc: replaced, 3 -> 4 classes, freshly initialised"
    before = to_numpy_state(engine.model)
    pretrained = weights(framework, pretrained_path)
    fit(config, engine, BatchLoader(training_set(config), config.batch_size, shuffle=True), log=lambda line: None)
    after = to_numpy_state(engine.model)

    assert before["fc.weight"].shape == after["fc.weight"].shape == (4, 64)  # a new head for 4 classes
    parameters = [n for n in before if not n.endswith(("running_mean", "running_var"))]
    first_trained = next(i for i, n in enumerate(parameters) if n.startswith(ft_begin_module + "."))
    for name in parameters[:first_trained]:
        np.testing.assert_array_equal(before[name], pretrained[name], err_msg=name)
        np.testing.assert_array_equal(after[name], before[name], err_msg=name)
    for name in parameters[first_trained:]:
        if not name.startswith("fc."):
            np.testing.assert_array_equal(before[name], pretrained[name], err_msg=name)
        assert np.abs(after[name] - before[name]).max() > 1e-6, f"{name} did not train"


def _fine_tuning_start(framework, data, tmp_path, pretrain_path, **overrides):
    """The neutral weights of the model `framework` builds for 4 classes from a pretrained file of 5."""
    config = load_config(tiny_config(str(data), tmp_path / "ft", n_classes=4, pretrain_path=str(pretrain_path),
                                     n_pretrain_classes=5, **overrides), (), ())
    return load(framework, "interop").to_numpy_state(engine_class(framework)(config).model)


def _assert_pretrained_body_new_head(state, written, head):
    assert state.keys() == written.keys()
    for name in written:
        if name.startswith(head):  # a fresh head for 4 classes instead of the file's 5
            assert state[name].shape == (4, *written[name].shape[1:]), name
        else:
            np.testing.assert_array_equal(state[name], written[name], err_msg=name)


@pytest.mark.parametrize("framework,suffix", [("paddle", ".pth"), ("mindspore", ".pth"), ("torch", ".ckpt")])
def test_fine_tuning_from_another_frameworks_file(framework, suffix, data, tmp_path):
    """pretrain_path in another framework's format is read through convert: kenshohara's .pth in
    Paddle and MindSpore, a .ckpt written by convert in PyTorch."""
    from backends.torch.interop import to_numpy_state
    from convert import read_checkpoint, write_checkpoint
    kenshohara = tmp_path / "r3d10_K.pth"  # DataParallel's `module.` prefix, optimizer and scheduler state
    written = to_numpy_state(write_kenshohara_pth(kenshohara, "resnet10", 5, data_parallel=True, seed=7,
                                                  widen_factor=0.125))
    pretrained = kenshohara
    if suffix == ".ckpt":
        pretrained = tmp_path / "r3d10_K.ckpt"
        write_checkpoint(str(pretrained), read_checkpoint(str(kenshohara)))
    state = _fine_tuning_start(framework, data, tmp_path, pretrained)
    _assert_pretrained_body_new_head(state, written, "fc.")


def test_fine_tuning_mindspore_i3d_from_piergiaj_file(data, tmp_path):
    from backends.torch.interop import to_numpy_state
    piergiaj = tmp_path / "rgb_imagenet.pt"
    written = to_numpy_state(write_piergiaj_pt(piergiaj, n_classes=5, seed=2, widen_factor=0.125))
    state = _fine_tuning_start("mindspore", data, tmp_path, piergiaj, model="i3d")
    _assert_pretrained_body_new_head(state, written, "logits.")


@pytest.mark.parametrize("framework", ["paddle", "mindspore"])
def test_pretrained_file_convert_cannot_read_is_named(framework, tmp_path):
    import torch
    truncated = tmp_path / "truncated.pth"
    torch.save({"conv1.weight": torch.zeros(3)}, truncated)
    truncated.write_bytes(truncated.read_bytes()[:40])
    with pytest.raises(ValueError, match=f"^{truncated}: not a readable PyTorch file"):
        weights(framework, str(truncated))
    unknown = tmp_path / "odd.npz"  # arrays of no architecture
    np.savez(unknown, **{"conv1.weight": np.zeros((3, 3), np.float32)})
    with pytest.raises(ValueError, match=f"^{unknown}: "):
        weights(framework, str(unknown))


@pytest.mark.parametrize("framework,ms_mode", [("torch", "pynative"), ("paddle", "pynative"),
                                               ("mindspore", "pynative"), ("mindspore", "graph")])
def test_set_lr_takes_effect(framework, ms_mode, data, tmp_path, monkeypatch):
    config = load_config(tiny_config(str(data), tmp_path / "lr", ms_mode=ms_mode), (), ())
    warnings = []
    if framework == "mindspore":
        monkeypatch.setattr("mindspore.log.warning", lambda message, *args, **kwargs: warnings.append(message))
    engine = engine_class(framework)(config)
    to_numpy_state = load(framework, "interop").to_numpy_state
    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(4, 3, 4, 32, 32)).astype(np.float32), np.array([0, 1, 2, 0])
    engine.begin_epoch(1, True)
    start = to_numpy_state(engine.model)["conv1.weight"]
    engine.set_lr(0.0)
    engine.train_batch(x, y)
    np.testing.assert_array_equal(to_numpy_state(engine.model)["conv1.weight"], start)
    engine.set_lr(0.1)
    engine.train_batch(x, y)
    assert np.abs(to_numpy_state(engine.model)["conv1.weight"] - start).max() > 1e-4
    # MindSpore graph mode: the update takes the gradients as a variable (it used to hold them as constants of
    # its graph, warn with every gradient printed, and compile again at every step).
    assert not [w for w in warnings if "Constant value tensor" in w]


def test_mindspore_graph_mode_trains_like_pynative(data, reference_run):
    pynative = reference_run("mindspore")
    result = data / "mindspore_graph"
    run_cli("mindspore", "train", tiny_config(str(data), result, **{**REFERENCE, "n_epochs": 2}, ms_mode="graph"))
    graph_rows, pynative_rows = read_log(os.path.join(result, "train.log")), read_log(os.path.join(pynative, "train.log"))
    for graph_row, pynative_row in zip(graph_rows, pynative_rows[:2], strict=True):
        assert float(graph_row["loss"]) == pytest.approx(float(pynative_row["loss"]), abs=1e-4)
        assert graph_row["acc"] == pynative_row["acc"]


# --- the learning-rate schedule and the optimizers against PyTorch's ---

def _config(**values):
    return load_config(None, [f"{k}={json.dumps(v)}" for k, v in values.items()], ())


@pytest.mark.parametrize("kind", ["multistep", "cosine", "plateau"])
def test_lr_schedule_matches_torch_schedulers(kind):
    import torch
    config = _config(lr_scheduler=kind, learning_rate=0.1, multistep_milestones=[3, 3, 6], n_epochs=10,
                     plateau_patience=1)
    param = torch.nn.Parameter(torch.zeros(1))
    optimizer = torch.optim.SGD([param], lr=0.1)
    reference = {"multistep": lambda: torch.optim.lr_scheduler.MultiStepLR(optimizer, [3, 3, 6], 0.1),
                 "cosine": lambda: torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, 10),
                 "plateau": lambda: torch.optim.lr_scheduler.ReduceLROnPlateau(optimizer, "min", 0.1, 1)}[kind]()
    val_losses = [1.0, 0.9, 0.9, 0.95, 0.8999, 0.85, 0.86, 0.87, 0.88, 0.5]
    schedule = LRSchedule(config)
    ours, theirs = [], []
    for epoch, val_loss in enumerate(val_losses, 1):  # kenshohara: scheduler.step() after each epoch
        ours.append(schedule.lr(epoch))
        theirs.append(optimizer.param_groups[0]["lr"])
        schedule.step(val_loss)
        optimizer.step()
        if kind == "plateau":
            reference.step(val_loss)
        else:
            reference.step()
    assert ours == pytest.approx(theirs, rel=1e-12)
    assert len(set(ours)) > 2  # the settings do change the rate


def test_lr_schedule_takes_over_the_torch_scheduler_of_a_kenshohara_checkpoint():
    import torch
    optimizer = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=0.1)
    plateau = torch.optim.lr_scheduler.ReduceLROnPlateau(optimizer, "min", 0.1, 1)
    for val_loss in (1.0, 1.0, 1.0, 0.5, 0.6):  # one reduction, then a new best and one bad epoch
        plateau.step(val_loss)
    schedule = LRSchedule(_config(lr_scheduler="plateau", learning_rate=0.1, plateau_patience=1))
    schedule.load_state_dict(plateau.state_dict())
    assert (schedule.lr(6), schedule.best, schedule.bad_epochs) == (pytest.approx(0.01), 0.5, 1)
    schedule.step(0.7)
    plateau.step(0.7)
    assert schedule.lr(7) == pytest.approx(optimizer.param_groups[0]["lr"]) == pytest.approx(0.001)
    # MultiStepLR's state says nothing the epoch does not: the rate follows from the epoch.
    multistep = LRSchedule(_config(lr_scheduler="multistep", learning_rate=0.1, multistep_milestones=[3]))
    multistep.load_state_dict(torch.optim.lr_scheduler.MultiStepLR(optimizer, [3]).state_dict())
    assert (multistep.lr(3), multistep.lr(4)) == (pytest.approx(0.1), pytest.approx(0.01))


OPTIMIZERS = {"sgd": dict(optimizer="sgd", momentum=0.9, weight_decay=0.01),
              "nesterov": dict(optimizer="sgd", momentum=0.9, nesterov=True, weight_decay=0.01),
              "dampening": dict(optimizer="sgd", momentum=0.9, dampening=0.3, weight_decay=0.01),
              # kenshohara's main.py: Nesterov runs without dampening, whatever `dampening` says.
              "nesterov_dampening": dict(optimizer="sgd", momentum=0.9, nesterov=True, dampening=0.5,
                                         weight_decay=0.01),
              "adam": dict(optimizer="adam", learning_rate=0.01, weight_decay=0.01)}


def _descend(framework, config, steps=5):
    """Minimise 0.5 |w * a - b|^2 with the backend's build_optimizer; return w after `steps` steps."""
    rng = np.random.default_rng(0)
    w0, a, b = (rng.normal(size=(3, 4)).astype(np.float32) for _ in range(3))
    # The engine's primitive, on a bare parameter: it reads only the engine's config.
    build_optimizer = lambda config, params: engine_class(framework).build_optimizer(  # noqa: E731
        types.SimpleNamespace(config=config), params)
    if framework == "torch":
        import torch
        w = torch.nn.Parameter(torch.from_numpy(w0))
        optimizer = build_optimizer(config, [w])
        for _ in range(steps):
            optimizer.zero_grad()
            (0.5 * ((w * torch.from_numpy(a) - torch.from_numpy(b)) ** 2).sum()).backward()
            optimizer.step()
        return w.detach().numpy()
    if framework == "paddle":
        import paddle
        w = paddle.create_parameter([3, 4], "float32", default_initializer=paddle.nn.initializer.Assign(w0))
        optimizer = build_optimizer(config, [w])
        for _ in range(steps):
            (0.5 * ((w * paddle.to_tensor(a) - paddle.to_tensor(b)) ** 2).sum()).backward()
            optimizer.step()
            optimizer.clear_grad()
        return w.numpy()
    import mindspore as ms
    w = ms.Parameter(ms.Tensor(w0), name="w")
    optimizer = build_optimizer(config, [w])
    grad = ms.value_and_grad(lambda: 0.5 * ((w * ms.Tensor(a) - ms.Tensor(b)) ** 2).sum(), None, optimizer.parameters)
    for _ in range(steps):
        optimizer(grad()[1])
    return w.asnumpy()


@pytest.mark.parametrize("framework", ["paddle", "mindspore"])
@pytest.mark.parametrize("setting", OPTIMIZERS)
def test_optimizer_matches_torch(framework, setting):
    config = _config(**{"learning_rate": 0.1, **OPTIMIZERS[setting]})
    if framework == "paddle" and setting == "dampening":
        with pytest.raises(SystemExit, match="dampening"):
            _descend(framework, config)
        return
    expected = _descend("torch", config)
    np.testing.assert_allclose(_descend(framework, config), expected, atol=2e-7)
    assert np.abs(expected - _descend("torch", _config(**{**OPTIMIZERS[setting], "learning_rate": 0.1,
                                                           "weight_decay": 0.0}))).max() > 1e-4


def test_nesterov_ignores_dampening_like_kenshohara():
    nesterov = {"learning_rate": 0.1, **OPTIMIZERS["nesterov"]}
    np.testing.assert_array_equal(_descend("torch", _config(**nesterov, dampening=0.5)),
                                  _descend("torch", _config(**nesterov)))


@pytest.mark.parametrize("framework", FRAMEWORKS)
def test_nesterov_without_momentum_is_a_config_error(framework):
    config = _config(optimizer="sgd", momentum=0.0, nesterov=True)
    with pytest.raises(ConfigError, match="nesterov: true needs a momentum"):
        _descend(framework, config)


def test_train_cli_reports_nesterov_without_momentum_cleanly(data, tmp_path):
    config = tiny_config(str(data), tmp_path / "out", momentum=0.0, nesterov=True)
    with pytest.raises(SystemExit) as error:
        train_main("torch", "backends.torch.engine", ["--config", config])
    assert str(error.value) == (f"config error: {config}: nesterov: true needs a momentum (momentum is 0); "
                                "set momentum, e.g. 0.9, or nesterov: false")


def test_amp_grad_scaler_state_is_saved_and_restored(data, tmp_path):
    """With amp the scaler's scale and growth count go into save_N.pth and come back on load
    (checked with torch's CPU GradScaler: the engine uses amp on GPUs only)."""
    import torch
    config = load_config(tiny_config(str(data), tmp_path / "amp"), (), ())

    def amp_engine():
        engine = engine_class("torch")(config)
        engine.amp, engine.scaler = True, torch.amp.GradScaler("cpu", init_scale=2.0 ** 10, growth_interval=2)
        return engine

    engine = amp_engine()
    rng = np.random.default_rng(0)
    engine.begin_epoch(1, True)
    for _ in range(3):
        engine.train_batch(rng.normal(size=(4, 3, 4, 32, 32)).astype(np.float32), np.array([0, 1, 2, 0]))
    path = str(tmp_path / "save_1.pth")
    engine.save(path, {"epoch": 1, "arch": engine.arch, "scheduler": {}, "config": {}})
    assert torch.load(path, weights_only=True)["scaler"] == engine.scaler.state_dict()
    resumed = amp_engine()
    resumed.load(path)
    # 3 finite steps with growth every 2: one doubling, and one step towards the next.
    assert (resumed.scaler.get_scale(), resumed.scaler._get_growth_tracker()) == (2.0 ** 11, 1)


def test_atomic_write_leaves_old_file_when_writing_fails(tmp_path):
    path = tmp_path / "save_1.pth"
    path.write_text("old")

    def crash(tmp):
        with open(tmp, "w") as f:
            f.write("half")
        raise RuntimeError("disk full")

    with pytest.raises(CheckpointWriteError, match=r"save_1.pth \(disk full: is the disk full\?\); it is left as it"):
        atomic_write(str(path), crash)
    assert path.read_text() == "old" and os.listdir(tmp_path) == ["save_1.pth"]
    atomic_write(str(path), lambda tmp: open(tmp, "w").write("new"))
    assert path.read_text() == "new" and os.listdir(tmp_path) == ["save_1.pth"]


@pytest.mark.parametrize("framework", ["torch", "paddle", "mindspore"])
@pytest.mark.parametrize("key", ["pretrain_path", "resume_path"])
def test_unreadable_weights_file_is_named_without_a_traceback(data, tmp_path, framework, key):
    junk = tmp_path / "save_3.pth"
    junk.write_bytes(b"not a checkpoint")
    config = tiny_config(str(data), tmp_path / "out", **{key: str(junk)})
    with pytest.raises(SystemExit) as error:
        train_main(framework, f"backends.{framework}.engine", ["--config", config])
    assert str(error.value).startswith(f"cannot train: {junk}: ")


@pytest.mark.parametrize("framework", FRAMEWORKS)
def test_optimizer_state_of_another_optimizer_is_a_resume_error(framework, data, reference_run, tmp_path):
    path = checkpoint(reference_run(framework), framework, 2)  # SGD with momentum
    config = load_config(tiny_config(str(data), tmp_path / "adam", optimizer="adam"), (), ())
    with pytest.raises(ResumeError, match=f"{path}: its optimizer state does not fit this run's optimizer"):
        engine_class(framework)(config).load(path)


@pytest.mark.parametrize("framework", FRAMEWORKS)
def test_amp_where_the_framework_cannot_says_so(framework, data, tmp_path):
    config = load_config(tiny_config(str(data), tmp_path / "amp", amp=True, device="cpu"), (), ())
    said = []
    engine = engine_class(framework)(config, log=said.append)
    assert not engine.amp
    assert len(said) == 1 and said[0].startswith(f"[{framework}] amp: ") and said[0].endswith("training in float32")


def test_mindspore_amp_scales_skips_overflow_and_resumes(data, tmp_path, monkeypatch):
    """MindSpore amp (O2 + dynamic loss scaling) as it runs on GPU/Ascend, run here on CPU: the model computes in
    float16 (logits move from float32's by a float16 rounding), a step whose scaled gradients overflow is skipped
    and halves the scale as torch's GradScaler does, and the scaler's state goes into save_N.ckpt and comes back."""
    import mindspore as ms
    backend = load("mindspore", "engine")
    monkeypatch.setattr(backend.Engine, "amp_unavailable", lambda self: None)
    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(4, 3, 4, 32, 32)).astype(np.float32), np.array([0, 1, 2, 0])

    def engine(amp):
        config = load_config(tiny_config(str(data), tmp_path / "amp", amp=amp, device="cpu"), (), ())
        built = backend.Engine(config)
        built.begin_epoch(1, True)
        return built

    plain, mixed = engine(False), engine(True)
    assert mixed.amp and mixed.scaler.scale_value.asnumpy() == 2.0 ** 16
    _, logits32 = plain.train_batch(x, y)
    _, logits16 = mixed.train_batch(x, y)
    assert logits16.dtype == np.float32 and 0 < np.abs(logits16 - logits32).max() < 1e-2 * np.abs(logits32).max()
    assert all(param.dtype == ms.float32 for param in mixed.model.trainable_params())

    mixed.load_scaler_state({"scale": 3e38, "counter": 5})  # loss x scale overflows float32
    before = {param.name: param.asnumpy().copy() for param in mixed.model.trainable_params()}
    mixed.train_batch(x, y)
    assert all(np.array_equal(before[param.name], param.asnumpy()) for param in mixed.model.trainable_params())
    assert mixed.scaler_state() == {"scale": np.float32(1.5e38), "counter": 0}
    mixed.load_scaler_state({"scale": 1024.0, "counter": 0})
    mixed.train_batch(x, y)  # finite: a step, the counter grows
    assert mixed.scaler_state()["counter"] == 1
    assert any(not np.array_equal(before[param.name], param.asnumpy()) for param in mixed.model.trainable_params())

    path = str(tmp_path / "save_1.ckpt")
    mixed.save(path, {"epoch": 1, "arch": mixed.arch, "scheduler": {}, "config": {}})
    resumed = engine(True)
    resumed.load(path)
    assert resumed.scaler_state() == mixed.scaler_state()


@pytest.mark.parametrize("framework", FRAMEWORKS)
def test_a_huge_logit_margin_gives_the_whole_loss(framework, data, tmp_path):
    """Cross entropy of logits 200 apart is 200 in every backend (paddle's F.cross_entropy stops at 64)."""
    engine = engine_class(framework)(load_config(tiny_config(str(data), tmp_path / "ce"), (), ()))
    engine.begin_epoch(1, False)
    engine.model = lambda x: x  # the clip is the logits
    logits = np.array([[200.0, 0.0, 0.0], [0.0, 3.0, 0.0]], np.float32)
    expected = np.mean([200.0, np.log(np.exp(3.0) + 2) - 3.0])
    for y in (np.array([1, 1]), np.eye(3, dtype=np.float32)[[1, 1]]):
        loss, _ = engine.eval_batch(logits, y)
        assert loss == pytest.approx(expected, rel=1e-6), (framework, y.ndim)
