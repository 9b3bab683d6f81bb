"""A corpus of malformed checkpoints, made at test time: every reader names the file in one line, allocates at most
about twice the file's size, and `python -m convert` exits non-zero without writing anything."""
import json
import pickle
import struct
import tracemalloc
import zipfile

import numpy as np
import pytest

from convert.__main__ import main as convert_main
from core.checkpoints.formats import FORMATS, format_of
from core import safe_pickle


def _npz_bytes(**arrays):
    import io
    buffer = io.BytesIO()
    np.savez(buffer, **arrays)
    return buffer.getvalue()


def _safetensors(header, data=b"", header_length=None):
    text = json.dumps(header).encode()
    return struct.pack("<Q", len(text) if header_length is None else header_length) + text + data


def _lying_npz(claim):
    """A stored member whose zip headers claim `claim` bytes for 8 bytes of data."""
    data = bytearray(_npz_bytes(w=np.zeros(2, np.float32)))
    for signature, offset in ((b"PK\x03\x04", 18), (b"PK\x01\x02", 20)):  # local header, central directory
        at = data.index(signature)
        data[at + offset:at + offset + 8] = struct.pack("<II", claim, claim)  # compressed, uncompressed
    return bytes(data)


def _zip_bomb():
    import io
    buffer = io.BytesIO()
    np.savez_compressed(buffer, w=np.zeros(2 ** 21, np.float32))  # 8 MiB of zeros in about 8 KiB
    return buffer.getvalue()


def _lying_npy_header():
    """The member is 2 floats, its .npy header (with a correct CRC) says 9 of them."""
    import io
    npy = io.BytesIO()
    np.save(npy, np.zeros(2, np.float32))
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("w.npy", npy.getvalue().replace(b"'shape': (2,)", b"'shape': (9,)"))
    return buffer.getvalue()


def _ckpt_claiming_4_gib():
    def varint(value):
        out = bytearray()
        while value > 0x7F:
            out.append(value & 0x7F | 0x80)
            value >>= 7
        out.append(value)
        return bytes(out)
    tensor = b"\x08\x02\x12\x07Float32\x1a" + varint(2 ** 32)
    value = b"\x0a\x01w\x12" + varint(len(tensor) + 2 ** 32) + tensor
    return b"\x0a" + varint(len(value) + 2 ** 32) + value + b"\0" * 8


class CreatesFile:
    def __init__(self, path):
        self.path = path

    def __reduce__(self):
        return open, (self.path, "w")


F32 = {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]}
CORPUS = {
    "empty.npz": (b"", "the file is empty"),
    "text.npz": (b"hello, not a zip", "not a zip archive"),
    "lying.npz": (_lying_npz(1000), "'w' claims 1000 bytes, more than the whole file"),
    "lying_1gib.npz": (_lying_npz(2 ** 30), "its members claim 1073741824 bytes, more than 16 times the file's"),
    "bomb.npz": (_zip_bomb(), "more than 16 times the file's"),
    "strings.npz": (_npz_bytes(w=np.array(["a", "b"])), "'w' holds <U1 values; a parameter file holds numbers only"),
    "header.npz": (_lying_npy_header(), "'w' claims shape (9,) float32 (36 bytes), but the member holds 8"),
    "truncated.npz": (_npz_bytes(w=np.zeros(64, np.float32))[:200], "not a readable .npz file"),
    "empty.safetensors": (b"", "0 bytes, shorter than the 8-byte header length"),
    "long_header.safetensors": (_safetensors({"w": F32}, b"\0" * 8, 2 ** 40), "a header of 1099511627776 bytes"),
    "not_json.safetensors": (struct.pack("<Q", 4) + b"{{{{" + b"\0" * 8, "the header is not JSON"),
    "past_end.safetensors": (_safetensors({"w": {**F32, "data_offsets": [0, 2 ** 40]}}, b"\0" * 8),
                             "outside the 8 data bytes"),
    "wrong_span.safetensors": (_safetensors({"w": {**F32, "shape": [2 ** 30]}}, b"\0" * 8),
                               "spans 8 bytes, not the"),
    "bad_dtype.safetensors": (_safetensors({"w": {**F32, "dtype": "Q99"}}, b"\0" * 8),
                              "'w' is not a dtype, shape and data_offsets entry"),
    "negative.safetensors": (_safetensors({"w": {**F32, "shape": [-2]}}, b"\0" * 8), "outside the 8 data bytes"),
    "overlap.safetensors": (_safetensors({"a": F32, "b": F32}, b"\0" * 8), "overlaps the tensor before it"),
    "list.safetensors": (_safetensors([1, 2], b""), "the header is not a JSON object"),
    "empty.ckpt": (b"", "truncated or corrupt MindSpore checkpoint (the file is empty)"),
    "empty.pth": (b"", "not a readable PyTorch file (the file is empty)"),
    "claims_4gib.ckpt": (_ckpt_claiming_4_gib(), "bytes announced, 34 left in the file"),
    "empty.pdparams": (b"", "the file is empty"),
    "bytes8.pdparams": (b"\x80\x04\x8e" + struct.pack("<Q", 2 ** 40) + b"abc", "1099511627776 bytes announced"),
    # _reconstruct's shape (0,) made (10**9,).
    "huge_array.pdparams": (pickle.dumps(np.zeros(1, np.float32), protocol=2).replace(
        b"K\x00\x85", b"J\x00\xca\x9a;\x85", 1), "announced in a file of"),
    "truncated.pdparams": (pickle.dumps({"w": np.zeros(64, np.float32)})[:100], "not a readable pickle file"),
}


@pytest.mark.parametrize("name", sorted(CORPUS))
def test_malformed_files_are_one_line_errors_and_bounded(tmp_path, name):
    data, message = CORPUS[name]
    path = tmp_path / name
    path.write_bytes(data)
    tracemalloc.start()
    try:
        with pytest.raises((ValueError, pickle.UnpicklingError)) as error:
            format_of(str(path)).read(str(path))
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert str(error.value).startswith(f"{path}: ") and message in str(error.value), str(error.value)
    # Python objects of the reader itself (a few KiB) plus at most twice the file.
    assert peak < 2 * len(data) + 256 * 1024, peak

    with pytest.raises(SystemExit) as exit_info:
        convert_main([str(path), str(tmp_path / "out.pth")])
    line = str(exit_info.value.code)
    assert line.startswith(f"error: {path}: ") and "\n" not in line
    assert not (tmp_path / "out.pth").exists()


def test_an_honest_compressed_npz_and_fortran_arrays_still_read(tmp_path):
    arrays = {"w": np.asfortranarray(np.arange(24, dtype=np.float32).reshape(2, 3, 4)), "b": np.ones(3, np.int64),
              "s": np.float64(2.5)}
    np.savez_compressed(tmp_path / "a.npz", **arrays)
    read = FORMATS["npz"].read(str(tmp_path / "a.npz"))
    for name, value in arrays.items():
        np.testing.assert_array_equal(read[name], value)
        assert read[name].dtype == np.asarray(value).dtype


def test_safetensors_written_by_the_library_read_back(tmp_path):
    arrays = {"b": np.arange(3, dtype=np.float16), "a": np.arange(12, dtype=np.int32).reshape(3, 4),
              "empty": np.zeros((0, 2), np.float32)}
    FORMATS["safetensors"].write(str(tmp_path / "a.safetensors"), arrays)
    read = FORMATS["safetensors"].read(str(tmp_path / "a.safetensors"))
    assert list(read) == list(arrays) or sorted(read) == sorted(arrays)
    for name, value in arrays.items():
        np.testing.assert_array_equal(read[name], value)
        assert read[name].dtype == value.dtype and read[name].shape == value.shape


def test_paddle_optimizer_state_reads_through_the_restricted_unpickler(tmp_path):
    """What paddle.save writes for an optimizer's state_dict (.pdopt) holds only arrays and plain values."""
    import paddle
    layer = paddle.nn.Linear(3, 2)
    optimizer = paddle.optimizer.Momentum(learning_rate=paddle.optimizer.lr.StepDecay(0.1, 2),
                                          parameters=layer.parameters())
    layer(paddle.ones([4, 3])).sum().backward()
    optimizer.step()
    paddle.save(optimizer.state_dict(), str(tmp_path / "save_1.pdopt"))
    state = safe_pickle.load(str(tmp_path / "save_1.pdopt"))
    expected = optimizer.state_dict()
    assert state["LR_Scheduler"] == expected["LR_Scheduler"]
    velocity = [name for name in expected if name.endswith("velocity_0")]
    assert len(velocity) == 2
    for name in velocity:
        np.testing.assert_array_equal(state[name], expected[name].numpy())


def test_pickled_arrays_of_objects_and_other_codecs_are_refused(tmp_path):
    (tmp_path / "objects.pdparams").write_bytes(pickle.dumps({"w": np.array([1, "a"], dtype=object)}))
    with pytest.raises(safe_pickle.UnsafePickleError, match="objects.pdparams: refusing an array of Python objects"):
        safe_pickle.load(str(tmp_path / "objects.pdparams"))
    (tmp_path / "codec.pdparams").write_bytes(
        b"\x80\x02c_codecs\nencode\nq\x00X\x01\x00\x00\x00aX\x06\x00\x00\x00base64\x86R.")
    with pytest.raises(safe_pickle.UnsafePickleError, match="only latin1"):
        safe_pickle.load(str(tmp_path / "codec.pdparams"))
