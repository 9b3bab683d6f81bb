"""The one checkpoint reader (core.checkpoints): community and framework files in, neutral weights out.

Backends never read files; every weights file reaches a model through core.checkpoints.read_state, and
every training checkpoint through read_training_checkpoint (tests/test_training.py resumes through it).
"""
import argparse
import os
import pickle
from collections import OrderedDict

import mindspore as ms  # before torch / paddle (tests/conftest.py)
import numpy as np
import paddle
import pytest
import torch

from backends import BACKENDS, load
from core import safe_pickle
from core.checkpoints import NotATrainingCheckpoint, read_state, read_training_checkpoint
from core.state_dict import StateDictMismatch, to_paddle
from tests.community import random_model, write_kenshohara_pth, write_piergiaj_pt

SMALL = dict(n_classes=6, widen_factor=0.125)


def torch_state(model):
    return load("torch", "interop").to_numpy_state(model)


@pytest.mark.parametrize("arch", ["resnet18", "r2plus1d_18"])
@pytest.mark.parametrize("data_parallel", [False, True])
def test_kenshohara_file_gives_the_weights_of_his_model(tmp_path, arch, data_parallel):
    path = tmp_path / "r3d.pth"
    saved = write_kenshohara_pth(path, arch, 5, data_parallel=data_parallel, seed=3, widen_factor=0.25,
                                 shortcut_type="A")
    raw = torch.load(path, weights_only=True)
    assert set(raw) == {"epoch", "arch", "state_dict", "optimizer", "scheduler"}
    assert all(k.startswith("module.") for k in raw["state_dict"]) == data_parallel
    state = read_state(str(path))
    expected = torch_state(saved)
    assert sorted(state) == sorted(expected)  # no num_batches_tracked, no module.
    for name in expected:
        np.testing.assert_array_equal(state[name], expected[name], err_msg=name)


@pytest.mark.parametrize("n_input_channels", [3, 2])
@pytest.mark.parametrize("data_parallel", [False, True])
def test_piergiaj_file_gives_the_weights_of_his_model(tmp_path, data_parallel, n_input_channels):
    path = tmp_path / "imagenet.pt"
    saved = write_piergiaj_pt(path, n_classes=6, data_parallel=data_parallel, widen_factor=0.125,
                              n_input_channels=n_input_channels)
    state = read_state(str(path))
    assert state["Conv3d_1a_7x7.conv3d.weight"].shape[1] == n_input_channels
    for name, value in torch_state(saved).items():
        np.testing.assert_array_equal(state[name], value, err_msg=name)
    if n_input_channels == 2:  # a flow file refused by an RGB model, naming the stem
        rgb = load("torch", "models").build_model("i3d", n_classes=6, widen_factor=0.125)
        with pytest.raises(StateDictMismatch, match=r"Conv3d_1a_7x7.conv3d.weight: model \(8, 3, 7, 7, 7\)"):
            load("torch", "interop").load_numpy_state(rgb, state)


def test_torch_files_that_are_not_checkpoints_are_named(tmp_path):
    not_weights = tmp_path / "notes.pth"
    torch.save({"epoch": 3, "lr": [0.1]}, not_weights)
    with pytest.raises(ValueError, match="notes.pth"):
        read_state(str(not_weights))
    unsafe = tmp_path / "unsafe.pth"  # arbitrary objects are never unpickled
    torch.save({"state_dict": {"conv1.weight": torch.zeros(3)}, "opt": argparse.Namespace(lr=0.1)}, unsafe)
    with pytest.raises(pickle.UnpicklingError, match="unsafe.pth: refusing to load.*argparse.Namespace"):
        read_state(str(unsafe))
    truncated = tmp_path / "truncated.pth"
    truncated.write_bytes(not_weights.read_bytes()[:40])
    with pytest.raises(ValueError, match="truncated.pth: not a readable PyTorch file"):
        read_state(str(truncated))


def test_paddle_save_of_resnet50_reads_as_the_neutral_weights(tmp_path):
    expected = torch_state(random_model("resnet50", seed=5, **SMALL))
    model = load("paddle", "models").build_model("resnet50", **SMALL)
    load("paddle", "interop").load_numpy_state(model, expected)
    path = tmp_path / "resnet50.pdparams"
    paddle.save(model.state_dict(), str(path))
    state = read_state(str(path))
    assert sorted(state) == sorted(expected)
    for name in expected:
        np.testing.assert_array_equal(state[name], expected[name])
    assert state["fc.weight"].shape == (6, 256)  # neutral (out, in), transposed back from Paddle's (in, out)


@pytest.mark.parametrize("protocol", [2, 4])
def test_paddle_port_pickle_of_resnet50_reads(tmp_path, protocol):
    # The PaddlePaddle 3D-ResNets port converts r3d50_K_200ep.pth with pickle.dump of an
    # OrderedDict of numpy arrays in Paddle spelling; Paddle 1.x wrote protocol 2.
    expected = torch_state(random_model("resnet50", seed=6, **SMALL))
    path = tmp_path / "paddle_resnet50_mk.pdparams"
    with open(path, "wb") as file:
        pickle.dump(OrderedDict(to_paddle(expected)), file, protocol=protocol)
    state = read_state(str(path))
    assert sorted(state) == sorted(expected)
    for name in expected:
        np.testing.assert_array_equal(state[name], expected[name])


class _Payload:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return open, (self.marker, "w")  # unpickling this creates the marker file


def test_malicious_pickle_is_refused_before_it_runs(tmp_path):
    # The payload works: plain pickle creates the file.
    proof = tmp_path / "proof"
    pickle.loads(pickle.dumps({"conv1.weight": _Payload(str(proof))}))["conv1.weight"].close()
    assert proof.exists()

    marker = tmp_path / "marker"
    path = tmp_path / "evil.pdparams"
    with open(path, "wb") as file:
        pickle.dump({"conv1.weight": np.zeros(3, np.float32), "fc.weight": _Payload(str(marker))}, file)
    with pytest.raises(safe_pickle.UnsafePickleError, match=r"evil\.pdparams: refusing to load io\.open"):
        read_state(str(path))
    assert not marker.exists()


def test_pickles_that_are_not_paddle_state_dicts_are_named(tmp_path):
    path = tmp_path / "truncated.pdparams"
    path.write_bytes(pickle.dumps({"a": np.zeros(3)})[:20])
    with pytest.raises(pickle.UnpicklingError, match="truncated.pdparams"):
        read_state(str(path))
    path = tmp_path / "list.pdparams"
    path.write_bytes(pickle.dumps([np.zeros(3)]))
    with pytest.raises(ValueError, match="list.pdparams: expected a dict of parameters"):
        read_state(str(path))


def test_mindspore_save_checkpoint_reads_exactly(tmp_path):
    model = load("mindspore", "models").build_model("r2plus1d_18", **SMALL)
    state = load("mindspore", "interop").to_numpy_state(model)
    path = str(tmp_path / "r2plus1d_18.ckpt")
    ms.save_checkpoint(model, path)
    loaded = read_state(path)
    assert loaded.keys() == state.keys()
    for name, value in state.items():
        assert loaded[name].dtype == np.float32 and np.array_equal(loaded[name], value), name


def test_bad_ckpt_files_are_named(tmp_path):
    with pytest.raises(FileNotFoundError, match="missing.ckpt"):
        read_state(str(tmp_path / "missing.ckpt"))
    (tmp_path / "garbage.ckpt").write_bytes(b"not a checkpoint")
    with pytest.raises(ValueError, match="garbage.ckpt"):
        read_state(str(tmp_path / "garbage.ckpt"))


@pytest.mark.parametrize("backend", BACKENDS)
def test_a_weights_file_is_no_training_checkpoint(tmp_path, backend):
    from core.checkpoints import Checkpoint, write_checkpoint
    from core.archs import expected_shapes

    state = {name: np.zeros(shape, np.float32) for name, shape in expected_shapes("resnet10", **SMALL).items()}
    path = str(tmp_path / f"weights.{load(backend, 'engine').Engine.native_format}")
    write_checkpoint(path, Checkpoint(state, "resnet10", SMALL))
    with pytest.raises(NotATrainingCheckpoint, match="weights file without optimizer state.*pretrain_path"):
        read_training_checkpoint(path)



def test_an_incomplete_paddle_set_is_never_resumed_and_names_the_newest_complete_one(tmp_path):
    """save_N.pdparams + .pdopt + .json: the json (written last, with the digests of the other two) commits it."""
    from backends.paddle.engine import Engine
    from core.config import load_config
    config = load_config(None, ["model_depth=10", "n_classes=3", "resnet_widen_factor=0.125", "device=cpu",
                                f"result_path={tmp_path}"], ())
    engine = Engine(config)
    for epoch in (1, 2, 3):
        engine.save(str(tmp_path / f"save_{epoch}.pdparams"), {"epoch": epoch, "arch": engine.arch, "scheduler": {},
                                                               "config": {}})
    assert read_training_checkpoint(str(tmp_path / "save_3.pdparams")).epoch == 3
    (tmp_path / "save_3.pdopt").unlink()  # killed before the optimizer state was renamed into place
    with pytest.raises(NotATrainingCheckpoint, match=r"save_3.pdparams: incomplete checkpoint set \(.*save_3.pdopt "
                                                     r"missing.*the newest complete one is .*save_2.pdparams"):
        read_training_checkpoint(str(tmp_path / "save_3.pdparams"))
    # A set whose .pdparams was rewritten after its json (a rerun killed mid-save): the digests disagree.
    (tmp_path / "save_2.pdparams").write_bytes((tmp_path / "save_1.pdparams").read_bytes()[:-8] + b"x" * 8)
    with pytest.raises(NotATrainingCheckpoint, match=r"save_2.pdparams: its .pdparams / .pdopt are not the ones its "
                                                     r".json recorded.*the newest complete one is .*save_1.pdparams"):
        read_training_checkpoint(str(tmp_path / "save_2.pdparams"))


def test_temporaries_of_a_killed_save_are_removed_when_training_starts(tmp_path):
    from core.training import remove_stale_temporaries
    dead, alive = tmp_path / ".tmp999999999.save_3.pth", tmp_path / f".tmp{os.getpid()}.save_4.pth"
    dead.write_bytes(b"half a checkpoint")
    alive.write_bytes(b"being written")
    (tmp_path / "save_2.pth").write_bytes(b"a checkpoint")
    remove_stale_temporaries(str(tmp_path))
    assert sorted(os.listdir(tmp_path)) == [alive.name, "save_2.pth"]
