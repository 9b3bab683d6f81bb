"""Nothing a file contains ever runs: every reader and entry point is given a pickle whose payload would create a
file, and the file never appears (convert; pretrain_path in each backend's train; evaluate --resume_path)."""
import io
import json
import os
import pickle

import numpy as np
import pytest
import torch

from convert.__main__ import main as convert_main
from core.checkpoints.reader import paddle_set_record
from core.cli import evaluate_main, train_main
from tests._training_data import tiny_config, write_colour_dataset


class CreatesFile:
    """Unpickling this calls open(path, "w"): the file appears if the payload runs."""

    def __init__(self, path):
        self.path = path

    def __reduce__(self):
        return open, (self.path, "w")


def _state(marker):
    return {"conv1.weight": np.zeros((2, 3, 1, 1, 1), np.float32), "payload": CreatesFile(marker)}


def write_payloads(directory, marker):
    """The same payload in every pickled format the project reads: {name: path}."""
    paths = {}
    torch.save({"state_dict": {"conv1.weight": torch.zeros(2, 3, 1, 1, 1)}, "payload": CreatesFile(marker)},
               os.path.join(directory, "evil.pth"))
    paths["pth"] = os.path.join(directory, "evil.pth")
    for name in ("evil.pdparams", "evil.pdopt", "evil_protocol2.pdparams"):
        with open(os.path.join(directory, name), "wb") as f:
            pickle.dump(_state(marker), f, protocol=2 if "protocol2" in name else 4)
        paths[name.split(".")[1] + ("2" if "protocol2" in name else "")] = os.path.join(directory, name)
    # An .npz whose member is a pickled object array (np.save with allow_pickle).
    buffer = io.BytesIO()
    np.savez(buffer, w=np.array([CreatesFile(marker)], dtype=object))
    with open(os.path.join(directory, "evil.npz"), "wb") as f:
        f.write(buffer.getvalue())
    paths["npz"] = os.path.join(directory, "evil.npz")
    return paths


@pytest.fixture(scope="module")
def payloads(tmp_path_factory):
    directory = tmp_path_factory.mktemp("payloads")
    marker = str(directory / "payload_ran")
    paths = write_payloads(str(directory), marker)
    # The payload is live: a plain unpickler creates the file.
    with open(paths["pdparams"], "rb") as f:
        pickle.load(f)
    assert os.path.exists(marker)
    os.remove(marker)
    return paths, marker


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    root = tmp_path_factory.mktemp("colours")
    write_colour_dataset(str(root), train_per_class=1, val_per_class=1, n_frames=4)
    return str(root)


@pytest.mark.parametrize("kind", ["pth", "pdparams", "pdparams2", "pdopt", "npz"])
def test_convert_refuses_every_payload(payloads, tmp_path, kind):
    paths, marker = payloads
    extra = ["--from", "pdparams"] if kind == "pdopt" else []
    with pytest.raises(SystemExit) as exit_info:
        convert_main([paths[kind], str(tmp_path / "out.npz"), *extra])
    assert str(exit_info.value.code).startswith(f"error: {paths[kind]}: ")
    assert not os.path.exists(marker) and not (tmp_path / "out.npz").exists()


# Each backend's own pickled format, and a pickled format it reads through convert.
ROUTES = [("torch", "pth"), ("torch", "pdparams"), ("paddle", "pdparams"), ("paddle", "pdparams2"),
          ("paddle", "pth"), ("mindspore", "pdparams"), ("mindspore", "pth")]


@pytest.mark.parametrize("framework, kind", ROUTES)
def test_pretrain_path_never_runs_a_payload(payloads, data, tmp_path, framework, kind):
    paths, marker = payloads
    config = tiny_config(data, tmp_path / "out", pretrain_path=paths[kind], n_epochs=1)
    with pytest.raises(SystemExit) as exit_info:
        train_main(framework, f"backends.{framework}.engine", ["--config", config])
    assert str(exit_info.value.code).startswith("cannot train: ") and paths[kind] in str(exit_info.value.code)
    assert not os.path.exists(marker)
    assert not any(name.startswith("save_") for name in os.listdir(tmp_path / "out")) \
        if (tmp_path / "out").exists() else True


@pytest.mark.parametrize("framework, kind", ROUTES)
def test_evaluate_resume_path_never_runs_a_payload(payloads, data, tmp_path, framework, kind):
    paths, marker = payloads
    config = tiny_config(data, tmp_path / "out")
    with pytest.raises(SystemExit) as exit_info:
        evaluate_main(framework, f"backends.{framework}.engine", ["--config", config, "--resume_path", paths[kind]])
    assert str(exit_info.value.code).startswith("cannot evaluate the rgb model: ")
    assert paths[kind] in str(exit_info.value.code)
    assert not os.path.exists(marker) and not (tmp_path / "out" / "val.json").exists()


@pytest.mark.parametrize("framework", ["torch", "paddle"])
def test_resume_path_never_runs_a_payload(payloads, data, tmp_path, framework):
    """A training checkpoint whose optimizer state is the payload: the torch file itself, and Paddle's .pdopt
    inside a complete set (its .json records the digests, so the reader gets as far as unpickling it)."""
    paths, marker = payloads
    result = tmp_path / "run"
    if framework == "torch":
        resume = paths["pth"]
    else:
        from backends.paddle.engine import Engine
        from core.config import load_config
        engine = Engine(load_config(tiny_config(data, result, n_epochs=1), (), ()))
        resume = str(result / "save_1.pdparams")
        engine.save(resume, {"epoch": 1, "arch": engine.arch, "scheduler": {}, "config": {}})
        with open(paths["pdopt"], "rb") as evil, open(result / "save_1.pdopt", "wb") as pdopt:
            pdopt.write(evil.read())
        meta = json.loads((result / "save_1.json").read_text())
        meta["members"] = paddle_set_record(str(result / "save_1"))  # the set's record now vouches for it
        (result / "save_1.json").write_text(json.dumps(meta))
    config = tiny_config(data, tmp_path / "out", resume_path=resume, n_epochs=2)
    with pytest.raises(SystemExit) as exit_info:
        train_main(framework, f"backends.{framework}.engine", ["--config", config])
    assert str(exit_info.value.code).startswith("cannot train: ") and "refusing to load" in str(exit_info.value.code)
    assert not os.path.exists(marker)


@pytest.mark.parametrize("kind", ["pth", "pdparams"])
def test_predict_never_runs_a_payload(payloads, tmp_path, kind):
    from core.predict import predict_main
    from tests._data_videos import write_tiny_video
    paths, marker = payloads
    write_tiny_video(tmp_path / "clip.mp4")
    with pytest.raises(SystemExit) as exit_info:
        predict_main("torch", "backends.torch.engine", ["--resume_path", paths[kind], str(tmp_path / "clip.mp4")])
    assert str(exit_info.value.code).startswith(f"cannot predict: {paths[kind]}: ")
    assert not os.path.exists(marker)
