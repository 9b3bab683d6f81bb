"""MindSpore `.ckpt` files, read and written without importing MindSpore.

Importing MindSpore alone takes more than twice the memory of a ResNet-50 .ckpt, and its loader
holds the whole file and a parsed copy of it. A `.ckpt` is the protobuf message of MindSpore's
checkpoint.proto, and its wire format is simple enough to stream tensor by tensor:

    Checkpoint  { repeated Value value = 1; }
    Value       { required string tag = 1; oneof value { TensorProto tensor = 2; MapTensorProto maptensor = 3; } }
    TensorProto { repeated int64 dims = 1; required string tensor_type = 2; required bytes tensor_content = 3; }

mindspore.save_checkpoint writes one Checkpoint per parameter, back to back (protobuf reads that
as one message), with the fields in this order and `dims` unpacked. A tensor over 512 MiB is cut
into several Values with the same tag and the full dims, its raw bytes in 512 MiB pieces. A scalar
has no dims; a string has dims [0], type "str" and UTF-32 content. `crc_check=True` appends
b"crc_num" and the CRC-32 of everything before it as 10 big-endian bytes.
"""
import itertools
import os
import zlib

import numpy as np

# tensor_type spellings (str(mindspore dtype)) of the dtypes numpy has.
DTYPES = {"Bool": np.bool_, "Int8": np.int8, "UInt8": np.uint8, "Int16": np.int16, "UInt16": np.uint16,
          "Int32": np.int32, "UInt32": np.uint32, "Int64": np.int64, "UInt64": np.uint64,
          "Float16": np.float16, "Float32": np.float32, "Float64": np.float64}
TYPE_NAMES = {np.dtype(dtype): name for name, dtype in DTYPES.items()}
SLICE_BYTES = 512 * 2 ** 20  # save_checkpoint's piece size for large tensors
CRC_MARK = b"crc_num"
CRC_FOOTER = len(CRC_MARK) + 10
VARINT, LEN = 0, 2  # protobuf wire types
MAX_DIMS = 64  # numpy's limit; bounds the list of dims a file can make the reader hold


def _varint(value):
    out = bytearray()
    while value > 0x7F:
        out.append(value & 0x7F | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


def _key(number, wire_type):
    return _varint(number << 3 | wire_type)


def _len_field(number, payload):
    return _key(number, LEN) + _varint(len(payload)) + payload


def write_ckpt(path, arrays):
    """Write `{name: numpy array or str}` to `path` as mindspore.save_checkpoint does, byte for byte."""
    with open(path, "wb") as file:
        for name, array in arrays.items():
            if isinstance(array, str):  # a text entry (save_checkpoint's append_dict): dims [0], UTF-32
                text = array.encode("utf-32-le")
                tensor = _key(1, VARINT) + _varint(0) + _len_field(2, b"str") + _len_field(3, text)
                file.write(_len_field(1, _len_field(1, name.encode()) + _len_field(2, tensor)))
                continue
            array = np.asarray(array)
            if array.dtype not in TYPE_NAMES:
                raise ValueError(f"{path}: '{name}' has dtype {array.dtype}, which a .ckpt cannot hold "
                                f"(supported: {', '.join(str(np.dtype(dtype)) for dtype in DTYPES.values())})")
            if array.size == 0:
                raise ValueError(f"{path}: '{name}' is empty, which a .ckpt cannot hold (dims [0] reads as a scalar)")
            # Bytes in C order, as a view where the array allows it (reshape(-1) copies only when it must).
            data = array.reshape(-1).view(np.uint8)
            shape_and_type = b"".join(_key(1, VARINT) + _varint(dim) for dim in array.shape)
            shape_and_type += _len_field(2, TYPE_NAMES[array.dtype].encode())
            for start in range(0, len(data), SLICE_BYTES):
                piece = data[start:start + SLICE_BYTES]
                tensor = shape_and_type + _key(3, LEN) + _varint(len(piece))
                value = _len_field(1, name.encode()) + _key(2, LEN) + _varint(len(tensor) + len(piece)) + tensor
                file.write(_key(1, LEN) + _varint(len(value) + len(piece)) + value)
                file.write(piece)


class CorruptCheckpoint(ValueError):
    """A .ckpt that is truncated, damaged or not a MindSpore checkpoint."""


class _Stream:
    """The protobuf payload of an open .ckpt, read front to back; keeps the CRC-32 when the file has one."""

    def __init__(self, file, path, size, with_crc):
        self.file, self.path, self.left = file, path, size
        self.crc = 0 if with_crc else None

    def error(self, problem):
        return CorruptCheckpoint(f"{self.path}: truncated or corrupt MindSpore checkpoint ({problem})")

    def _account(self, data):
        self.left -= len(data)
        if self.crc is not None:
            self.crc = zlib.crc32(data, self.crc)

    def read(self, size):
        if size > self.left:
            raise self.error(f"{size} bytes announced, {self.left} left in the file")
        data = self.file.read(size)
        self._account(data)
        return data

    def string(self):
        try:
            return self.read(self.varint()).decode()
        except UnicodeDecodeError:
            raise self.error("a name or type that is not UTF-8") from None

    def read_array(self, size):
        """The next `size` bytes, read straight into a new uint8 array (no intermediate bytes object)."""
        if size > self.left:
            raise self.error(f"a tensor of {size} bytes announced, {self.left} left in the file")
        array = np.empty(size, np.uint8)
        if self.file.readinto(array) != size:
            raise self.error("the file ended inside a tensor")
        self._account(array)
        return array

    def varint(self):
        value = shift = 0
        while True:
            byte = self.read(1)[0]
            value |= (byte & 0x7F) << shift
            if byte < 0x80:
                return value
            shift += 7
            if shift > 63:
                raise self.error("a number longer than 64 bits")

    def fields(self, length, message):
        """(field number, wire type) of each field of a `length`-byte message; the caller reads the values."""
        if length > self.left:
            raise self.error(f"a {message} of {length} bytes announced, {self.left} left in the file")
        end = self.left - length
        while self.left > end:
            key = self.varint()
            yield key >> 3, key & 7
        if self.left != end:
            raise self.error(f"a field runs past the end of its {message}")


def _read_tensor(stream, length):
    dims, type_name, content = [], None, None
    for field in stream.fields(length, "TensorProto"):
        if field == (1, VARINT):
            if len(dims) == MAX_DIMS:
                raise stream.error(f"a tensor of more than {MAX_DIMS} dimensions")
            dims.append(stream.varint())
        elif field == (2, LEN):
            type_name = stream.string()
        elif field == (3, LEN):
            content = stream.read_array(stream.varint())
        else:
            raise stream.error(f"unexpected field {field[0]} (wire type {field[1]}) in a TensorProto")
    if type_name is None or content is None:
        raise stream.error("a tensor without its type or content")
    return dims, type_name, content


def _read_value(stream, length):
    tag = tensor = None
    for field in stream.fields(length, "Value"):
        if field == (1, LEN):
            tag = stream.string()
        elif field == (2, LEN):
            tensor = _read_tensor(stream, stream.varint())
        elif field == (3, LEN):
            raise ValueError(f"{stream.path}: '{tag}' is a MapParameter, which is not supported")
        else:
            raise stream.error(f"unexpected field {field[0]} (wire type {field[1]}) in a Value")
    if tag is None or tensor is None:
        raise stream.error("a value without its name or tensor")
    return tag, tensor


def _values(stream):
    """(tag, dims, tensor_type, content) of each Value of the Checkpoint."""
    for field in stream.fields(stream.left, "Checkpoint"):
        if field != (1, LEN):
            raise stream.error(f"unexpected field {field[0]} (wire type {field[1]}); not a MindSpore checkpoint?")
        tag, (dims, type_name, content) = _read_value(stream, stream.varint())
        yield tag, dims, type_name, content


def _to_value(stream, tag, dims, type_name, content):
    """The numpy array (a str for string entries) that MindSpore's loader would make of a tag's bytes."""
    if type_name == "str":
        return content.tobytes().decode("utf-32-le")
    if type_name not in DTYPES:
        raise ValueError(f"{stream.path}: '{tag}' has tensor type {type_name}, which numpy cannot hold "
                         f"(supported: {', '.join(DTYPES)})")
    shape = () if dims == [0] else tuple(dims)  # as load_checkpoint: dims [0] is a scalar
    dtype = np.dtype(DTYPES[type_name])
    expected = dtype.itemsize * int(np.prod(shape))
    if content.size != expected:
        raise stream.error(f"'{tag}' holds {content.size} bytes, not the {expected} of {type_name} {list(shape)}")
    return content.view(dtype).reshape(shape)


def read_ckpt(path):
    """`{name: numpy array}` of a .ckpt in file order (string entries as str), as mindspore.load_checkpoint reads it.

    Holds the arrays only, never a copy of the file (except to join a tensor saved in 512 MiB pieces).
    Raises CorruptCheckpoint (a ValueError) naming `path` when the file is cut short, damaged, fails its CRC
    or is no checkpoint at all.
    """
    size = os.path.getsize(path)
    if size == 0:
        raise CorruptCheckpoint(f"{path}: truncated or corrupt MindSpore checkpoint (the file is empty)")
    with open(path, "rb") as file:
        footer = b""
        if size >= CRC_FOOTER:
            file.seek(size - CRC_FOOTER)
            footer = file.read(CRC_FOOTER)
            file.seek(0)
        with_crc = footer.startswith(CRC_MARK)
        stream = _Stream(file, path, size - CRC_FOOTER if with_crc else size, with_crc)
        arrays = {}
        # Consecutive Values of one tag are the pieces of one tensor; the last piece's dims count, as in MindSpore.
        for tag, values in itertools.groupby(_values(stream), key=lambda value: value[0]):
            values = list(values)
            content = values[0][3] if len(values) == 1 else np.concatenate([value[3] for value in values])
            arrays[tag] = _to_value(stream, tag, values[-1][1], values[-1][2], content)
    if with_crc and stream.crc != int.from_bytes(footer[len(CRC_MARK):], "big"):
        raise CorruptCheckpoint(f"{path}: damaged MindSpore checkpoint (its CRC-32 does not match its content)")
    return arrays
