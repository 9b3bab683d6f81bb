"""Nothing a file contains ever runs: every reader and entry point is given a pickle whose payload would create a
file, and the file never appears (convert; pretrain_path in each backend's train; evaluate --resume_path)."""
import io
import os
import pickle

import numpy as np
import pytest
import torch

from convert.__main__ import main as convert_main
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


def _engine(framework):
    if framework == "torch":
        from backends.torch.engine import TorchEngine, build_predictor
        return TorchEngine, build_predictor
    if framework == "paddle":
        from backends.paddle.engine import PaddleEngine, build_predictor
        return PaddleEngine, build_predictor
    from backends.mindspore.engine import MindSporeEngine, build_predictor
    return MindSporeEngine, build_predictor


# Each backend's own pickled format, and a pickled format it reads through convert.
ROUTES = [("torch", "pth"), ("torch", "pdparams"), ("paddle", "pdparams"), ("paddle", "pdparams2"),
          ("paddle", "pth"), ("mindspore", "pdparams"), ("mindspore", "pth")]


@pytest.mark.parametrize("framework, kind", ROUTES)
def test_pretrain_path_never_runs_a_payload(payloads, data, tmp_path, framework, kind):
    paths, marker = payloads
    build_engine, _ = _engine(framework)
    config = tiny_config(data, tmp_path / "out", pretrain_path=paths[kind], n_epochs=1)
    with pytest.raises(SystemExit) as exit_info:
        train_main(framework, build_engine, ["--config", config])
    assert str(exit_info.value.code).startswith("cannot train: ") and paths[kind] in str(exit_info.value.code)
    assert not os.path.exists(marker)
    assert not any(name.startswith("save_") for name in os.listdir(tmp_path / "out")) \
        if (tmp_path / "out").exists() else True


@pytest.mark.parametrize("framework, kind", ROUTES)
def test_evaluate_resume_path_never_runs_a_payload(payloads, data, tmp_path, framework, kind):
    paths, marker = payloads
    _, build_predictor = _engine(framework)
    config = tiny_config(data, tmp_path / "out")
    with pytest.raises(SystemExit) as exit_info:
        evaluate_main(framework, build_predictor, ["--config", config, "--resume_path", paths[kind]])
    assert str(exit_info.value.code).startswith("cannot evaluate the rgb model: ")
    assert paths[kind] in str(exit_info.value.code)
    assert not os.path.exists(marker) and not (tmp_path / "out" / "val.json").exists()
