"""MindSpore .ckpt files read and written without MindSpore (core/checkpoints/ckpt.py).

MindSpore itself runs in a subprocess that imports it first, as it requires; the other tests
never need it.
"""
import json
import os
import subprocess
import sys
import zlib

import numpy as np
import pytest

from convert import Checkpoint, write_checkpoint
from core.checkpoints import ckpt
from convert.__main__ import main as convert_main
from core.checkpoints.ckpt import CorruptCheckpoint, read_ckpt, write_ckpt
from core.archs import expected_shapes

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def sample_arrays():
    """Every dtype a .ckpt holds, scalars (an optimizer step, a flag) and a non-contiguous array."""
    rng = np.random.default_rng(0)
    arrays = {"conv1.weight": rng.standard_normal((4, 3, 3, 5, 5)).astype(np.float32),
              "fc.weight": rng.standard_normal((3, 6)).T,  # float64, Fortran order
              "bn1.bn2d.moving_mean": rng.standard_normal(4).astype(np.float16),
              "global_step": np.array(7, np.int32),
              "loss_scale_overflow": np.array(True),
              "mask": rng.random((2, 3)) > 0.5,
              "ids": rng.integers(-2 ** 40, 2 ** 40, (2, 3)),
              "learning_rate": np.array(0.01, np.float32)}
    for dtype in (np.int8, np.uint8, np.int16, np.uint16, np.uint32, np.uint64):
        arrays[f"small.{np.dtype(dtype).name}"] = rng.integers(0, 100, 5).astype(dtype)
    return arrays


def assert_same_arrays(actual, expected):
    assert list(actual) == list(expected)  # names and their order
    for name, value in expected.items():
        assert (actual[name].dtype, actual[name].shape) == (value.dtype, value.shape), name
        assert actual[name].tobytes() == value.tobytes(), name


def test_round_trip_is_bit_exact(tmp_path, monkeypatch):
    arrays = sample_arrays()
    write_ckpt(str(tmp_path / "a.ckpt"), arrays)
    assert_same_arrays(read_ckpt(str(tmp_path / "a.ckpt")), arrays)
    # Tensors above the piece size are written in pieces and joined on reading.
    monkeypatch.setattr(ckpt, "SLICE_BYTES", 1000)
    write_ckpt(str(tmp_path / "pieces.ckpt"), arrays)
    assert (tmp_path / "pieces.ckpt").read_bytes().count(b"conv1.weight") == 4  # 3600 bytes
    assert_same_arrays(read_ckpt(str(tmp_path / "pieces.ckpt")), arrays)


MINDSPORE_SIDE = """
import json, sys
import mindspore as ms
import numpy as np
from mindspore.train import serialization
folder = sys.argv[1]
with np.load(f"{folder}/arrays.npz") as archive:
    arrays = {name: archive[name] for name in json.load(open(f"{folder}/names.json"))}
loaded = ms.load_checkpoint(f"{folder}/ours.ckpt")
assert list(loaded) == list(arrays), list(loaded)
for name, value in arrays.items():
    got = loaded[name].asnumpy()
    assert (got.dtype, got.shape) == (value.dtype, value.shape) and got.tobytes() == value.tobytes(), name
params = [{"name": name, "data": ms.Tensor(value)} for name, value in arrays.items()]
ms.save_checkpoint(params, f"{folder}/theirs.ckpt")
ms.save_checkpoint(params, f"{folder}/crc.ckpt", crc_check=True)
ms.save_checkpoint(params[:1], f"{folder}/appended.ckpt", append_dict={"arch": "resnet-18", "epoch_num": 3})
serialization.SLICE_SIZE = 1  # KiB: tensors over 1 KiB go in 1 KiB pieces
ms.save_checkpoint(params, f"{folder}/pieces.ckpt")
print("mindspore read ours")
"""


def test_files_are_those_of_mindspore_both_ways(tmp_path, monkeypatch):
    arrays = sample_arrays()
    write_ckpt(str(tmp_path / "ours.ckpt"), arrays)
    np.savez(tmp_path / "arrays.npz", **arrays)
    (tmp_path / "names.json").write_text(json.dumps(list(arrays)))
    done = subprocess.run([sys.executable, "-c", MINDSPORE_SIDE, str(tmp_path)], capture_output=True, text=True,
                          cwd=ROOT)
    assert "mindspore read ours" in done.stdout, done.stderr[-3000:]

    assert (tmp_path / "theirs.ckpt").read_bytes() == (tmp_path / "ours.ckpt").read_bytes()
    assert_same_arrays(read_ckpt(str(tmp_path / "theirs.ckpt")), arrays)
    assert_same_arrays(read_ckpt(str(tmp_path / "crc.ckpt")), arrays)
    appended = read_ckpt(str(tmp_path / "appended.ckpt"))
    assert appended["arch"] == "resnet-18" and appended["epoch_num"].tobytes() == np.int64(3).tobytes()
    assert_same_arrays(read_ckpt(str(tmp_path / "pieces.ckpt")), arrays)
    monkeypatch.setattr(ckpt, "SLICE_BYTES", 1024)
    write_ckpt(str(tmp_path / "our_pieces.ckpt"), arrays)
    assert (tmp_path / "our_pieces.ckpt").read_bytes() == (tmp_path / "pieces.ckpt").read_bytes()


FRESH_PROCESS = """
import sys
sys.path.insert(0, {root!r})
from convert import convert
convert(sys.argv[1], sys.argv[2], log=lambda *_: None)
print(sorted(name for name in ("mindspore", "torch", "paddle") if name in sys.modules))
"""


def test_ckpt_conversions_import_no_framework(tmp_path):
    shapes = expected_shapes("resnet18", widen_factor=0.125, n_classes=5)
    rng = np.random.default_rng(1)
    state = {name: rng.standard_normal(shape).astype(np.float32) for name, shape in shapes.items()}
    write_checkpoint(str(tmp_path / "r.npz"), Checkpoint(state, "resnet18", {}))
    for src, dst in (("r.npz", "r.ckpt"), ("r.ckpt", "back.npz")):
        done = subprocess.run([sys.executable, "-c", FRESH_PROCESS.format(root=ROOT), str(tmp_path / src),
                               str(tmp_path / dst)], capture_output=True, text=True, check=True)
        assert done.stdout.strip() == "[]"
    assert "layer1.0.bn1.bn2d.moving_variance" in read_ckpt(str(tmp_path / "r.ckpt"))
    with np.load(tmp_path / "back.npz") as back:
        assert_same_arrays({name: back[name] for name in state}, state)


def test_truncated_or_damaged_files_fail_naming_the_file(tmp_path):
    arrays = {"conv1.weight": np.arange(24, dtype=np.float32).reshape(2, 3, 4), "step": np.array(3, np.int32)}
    path = tmp_path / "cut.ckpt"
    write_ckpt(str(path), arrays)
    whole = path.read_bytes()
    write_ckpt(str(tmp_path / "first.ckpt"), {"conv1.weight": arrays["conv1.weight"]})
    boundary = os.path.getsize(tmp_path / "first.ckpt")  # where the second Value starts
    assert read_ckpt(str(path)).keys() == arrays.keys()
    for size in range(1, len(whole)):
        path.write_bytes(whole[:size])
        if size == boundary:  # a whole number of Values is a valid, shorter checkpoint
            assert list(read_ckpt(str(path))) == ["conv1.weight"]
            continue
        with pytest.raises(CorruptCheckpoint, match=f"{path}: truncated or corrupt"):
            read_ckpt(str(path))

    # A CRC footer as save_checkpoint(crc_check=True) writes it catches a changed byte.
    damaged = bytearray(whole)
    damaged[-1] ^= 1  # in the last tensor
    path.write_bytes(bytes(damaged) + b"crc_num" + zlib.crc32(whole).to_bytes(10, "big"))
    with pytest.raises(CorruptCheckpoint, match="CRC-32 does not match"):
        read_ckpt(str(path))

    # Something else named .ckpt: the CLI reports the file.
    (tmp_path / "other.ckpt").write_bytes(b"PK\x03\x04 a zip archive, not a checkpoint")
    with pytest.raises(SystemExit) as exit_info:
        convert_main([str(tmp_path / "other.ckpt"), str(tmp_path / "out.npz")])
    assert f"{tmp_path / 'other.ckpt'}: truncated or corrupt MindSpore checkpoint" in str(exit_info.value.code)
    with pytest.raises(ValueError, match="'z' has dtype complex64"):
        write_ckpt(str(tmp_path / "z.ckpt"), {"z": np.zeros(2, np.complex64)})
