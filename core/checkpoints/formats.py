"""Checkpoint file formats: a file <-> a tree of dicts whose leaves are numpy arrays.

Only `.pth` needs its framework (torch, imported when used); `.ckpt` (ckpt.py),
`.pdparams`, `.npz` and `.safetensors` are read and written without one.
A format also knows its framework's spelling of the neutral parameter names.
"""
import json
import os
import pickle
import struct
import zipfile
import zlib
from dataclasses import dataclass
from typing import Callable

import numpy as np

from core.checkpoints.ckpt import read_ckpt, write_ckpt
from core import safe_pickle
from core.state_dict import from_mindspore, from_paddle, to_mindspore, to_paddle

EXTENSIONS = {".pth": "pth", ".pt": "pth", ".pdparams": "pdparams", ".ckpt": "ckpt", ".npz": "npz",
              ".safetensors": "safetensors"}


def _identity(state):
    return state


def map_arrays(tree, function, array_type=np.ndarray):
    """Apply `function` to every `array_type` leaf of nested dicts / lists / tuples."""
    if isinstance(tree, dict):
        return type(tree)((key, map_arrays(value, function, array_type)) for key, value in tree.items())
    if isinstance(tree, (list, tuple)):
        return type(tree)(map_arrays(value, function, array_type) for value in tree)
    return function(tree) if isinstance(tree, array_type) else tree


def _read_pth(path):
    if os.path.getsize(path) == 0:
        raise ValueError(f"{path}: not a readable PyTorch file (the file is empty)")
    import torch
    try:
        # mmap keeps tensors in the page cache instead of copying the file into memory;
        # files from before PyTorch 1.6 are not zip archives and cannot be mapped.
        tree = torch.load(path, map_location="cpu", weights_only=True, mmap=zipfile.is_zipfile(path))
    except pickle.UnpicklingError as error:
        if "Weights only load failed" not in str(error):
            raise pickle.UnpicklingError(f"{path}: not a readable PyTorch file ({error})") from error
        reasons = [line.strip() for line in str(error).splitlines() if "GLOBAL" in line or "Unsupported" in line]
        raise safe_pickle.UnsafePickleError(
            f"{path}: refusing to load: the pickle references more than tensors and plain containers "
            f"({reasons[0] if reasons else 'see torch.load(weights_only=True)'})") from None
    except (KeyError, EOFError, IndexError, RuntimeError, UnicodeDecodeError, struct.error) as error:
        # torch.load's errors on a file that is not a checkpoint at all (text, truncated zip, ...).
        raise ValueError(f"{path}: not a readable PyTorch file ({type(error).__name__}: {error})") from None
    return map_arrays(tree, lambda tensor: tensor.detach().numpy(), torch.Tensor)


def _write_pth(path, tree):
    import torch
    torch.save(map_arrays(tree, torch.from_numpy), path)


def _write_pdparams(path, tree):
    with open(path, "wb") as file:
        # Protocol 4 as paddle.save; `fast` skips the memo, which would otherwise keep a bytes
        # copy of every array until the end and double the memory.
        pickler = pickle.Pickler(file, protocol=4)
        pickler.fast = True
        pickler.dump(tree)


# Kinds of array a parameter file may hold: booleans, integers and floats. Strings and Python objects are refused.
NUMERIC_KINDS = "biuf"
# A deflated member may inflate up to 1032 times; real checkpoints (random-looking floats) barely shrink. A file
# whose members inflate to more than this many times its size is refused before anything is inflated.
MAX_INFLATION = 16
_CHUNK = 16 * 2 ** 20  # bytes copied at a time from a zip member into its array


class BadParameterFile(ValueError):
    """A parameter file that is empty, truncated, lying about its sizes or holding what is not numeric arrays."""


def _read_npz(path):
    """`{name: array}` of an .npz (np.savez / savez_compressed), without trusting the sizes it states.

    Each member's declared size is checked against the file size and against its .npy header's
    shape before a byte is inflated; only numeric arrays are admitted.
    """
    size = os.path.getsize(path)

    def bad(problem):
        return BadParameterFile(f"{path}: not a readable .npz file ({problem})")

    if size == 0:
        raise bad("the file is empty")
    try:
        archive = zipfile.ZipFile(path)
    except (zipfile.BadZipFile, zipfile.LargeZipFile, OSError, EOFError, ValueError) as error:
        raise bad(f"not a zip archive: {error}") from None
    with archive:
        members = archive.infolist()
        inflated = sum(member.file_size for member in members)
        if inflated > MAX_INFLATION * size:
            raise bad(f"its members claim {inflated} bytes, more than {MAX_INFLATION} times the file's {size}")
        try:
            return {_npz_name(member.filename): _read_npz_member(archive, member, bad) for member in members}
        except (zipfile.BadZipFile, EOFError, OSError, ValueError, NotImplementedError, zlib.error) as error:
            if isinstance(error, BadParameterFile):
                raise
            raise bad(f"{type(error).__name__}: {error}") from None


def _npz_name(filename):
    return filename[:-4] if filename.endswith(".npy") else filename


def _read_npz_member(archive, member, bad):
    name = _npz_name(member.filename)
    if member.compress_size > os.path.getsize(archive.filename):
        raise bad(f"'{name}' claims {member.compress_size} bytes, more than the whole file")
    if member.compress_type == zipfile.ZIP_STORED and member.compress_size != member.file_size:
        raise bad(f"'{name}' is stored uncompressed, yet claims {member.file_size} bytes in {member.compress_size}")
    with archive.open(member) as stream:
        version = np.lib.format.read_magic(stream)
        if version == (1, 0):
            shape, fortran_order, dtype = np.lib.format.read_array_header_1_0(stream)
        elif version == (2, 0):
            shape, fortran_order, dtype = np.lib.format.read_array_header_2_0(stream)
        else:
            raise bad(f"'{name}' is an .npy of version {version}, which holds no numeric array")
        if dtype.kind not in NUMERIC_KINDS or dtype.fields is not None or dtype.subdtype is not None:
            raise bad(f"'{name}' holds {dtype} values; a parameter file holds numbers only")
        header_bytes = stream.tell()
        data_bytes = int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
        if header_bytes + data_bytes != member.file_size:
            raise bad(f"'{name}' claims shape {shape} {dtype} ({data_bytes} bytes), "
                      f"but the member holds {member.file_size - header_bytes}")
        flat = np.empty(data_bytes, np.uint8)
        for start in range(0, data_bytes, _CHUNK):
            piece = flat[start:start + _CHUNK]
            if stream.readinto(piece) != len(piece):
                raise bad(f"'{name}' ends early")
    array = flat.view(dtype)
    return array.reshape(shape[::-1]).transpose() if fortran_order else array.reshape(shape)


def _write_npz(path, tree):
    with open(path, "wb") as file:
        np.savez(file, **tree)


# safetensors dtype names of the numeric types numpy has (BF16 and the FP8 kinds have no numpy type).
SAFETENSORS_DTYPES = {"BOOL": np.bool_, "U8": np.uint8, "I8": np.int8, "U16": np.uint16, "I16": np.int16,
                      "U32": np.uint32, "I32": np.int32, "U64": np.uint64, "I64": np.int64, "F16": np.float16,
                      "F32": np.float32, "F64": np.float64}
SAFETENSORS_MAX_HEADER = 100 * 2 ** 20  # the safetensors library's own limit


def _read_safetensors(path):
    """`{name: array}` of a .safetensors file (8-byte little-endian header length, JSON header, data).

    The header length, every dtype, shape and offset are checked against the file size before
    any array is allocated (the format's own rules: offsets inside the data, sized as the shape says).
    """
    size = os.path.getsize(path)

    def bad(problem):
        return BadParameterFile(f"{path}: not a readable .safetensors file ({problem})")

    if size < 8:
        raise bad(f"{size} bytes, shorter than the 8-byte header length")
    with open(path, "rb") as file:
        (header_length,) = struct.unpack("<Q", file.read(8))
        if header_length > min(size - 8, SAFETENSORS_MAX_HEADER):
            raise bad(f"a header of {header_length} bytes announced in a file of {size}")
        try:
            header = json.loads(file.read(header_length).decode("utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError) as error:
            raise bad(f"the header is not JSON: {error}") from None
        if not isinstance(header, dict):
            raise bad("the header is not a JSON object")
        header.pop("__metadata__", None)
        data_start, data_bytes = 8 + header_length, size - 8 - header_length
        entries = []
        for name, entry in header.items():
            try:
                dtype = np.dtype(SAFETENSORS_DTYPES[entry["dtype"]])
                shape = tuple(entry["shape"])
                begin, end = entry["data_offsets"]
                valid = (all(type(dim) is int and dim >= 0 for dim in shape)
                         and type(begin) is int and type(end) is int and 0 <= begin <= end <= data_bytes)
            except (KeyError, TypeError, ValueError):
                raise bad(f"'{name}' is not a dtype, shape and data_offsets entry "
                          f"(dtypes: {', '.join(SAFETENSORS_DTYPES)})") from None
            if not valid:
                raise bad(f"'{name}' has shape {list(shape)} and data_offsets {entry['data_offsets']}, "
                          f"outside the {data_bytes} data bytes")
            if end - begin != int(np.prod(shape, dtype=np.float64)) * dtype.itemsize:
                raise bad(f"'{name}' spans {end - begin} bytes, not the {np.prod(shape)} x {dtype.itemsize} "
                          f"of its shape {list(shape)}")
            entries.append((begin, end, name, dtype, shape))
        arrays, previous_end = {}, 0
        for begin, end, name, dtype, shape in sorted(entries, key=lambda entry: entry[:2]):
            if begin < previous_end:  # overlapping tensors would let a file make many arrays of the same bytes
                raise bad(f"'{name}' overlaps the tensor before it")
            previous_end = end
            array = np.empty(end - begin, np.uint8)
            file.seek(data_start + begin)
            if file.readinto(array) != end - begin:
                raise bad(f"the file ended inside '{name}'")
            arrays[name] = array.view(dtype).reshape(shape)
    return {name: arrays[name] for name in header}


def _write_safetensors(path, tree):
    from safetensors.numpy import save_file
    save_file({name: np.ascontiguousarray(value) for name, value in tree.items()}, path)


@dataclass(frozen=True)
class Format:
    name: str
    read: Callable
    write: Callable
    to_native: Callable  # neutral names -> the names stored in the file
    from_native: Callable


FORMATS = {
    "pth": Format("pth", _read_pth, _write_pth, _identity, _identity),
    "pdparams": Format("pdparams", safe_pickle.load, _write_pdparams, to_paddle, from_paddle),
    "ckpt": Format("ckpt", read_ckpt, write_ckpt, to_mindspore, from_mindspore),
    "npz": Format("npz", _read_npz, _write_npz, _identity, _identity),
    "safetensors": Format("safetensors", _read_safetensors, _write_safetensors, _identity, _identity),
}


def format_of(path, name=None):
    """The Format named `name`, else the one of the file extension."""
    if name is None:
        # `.pth.tar`: torch.save files of yjxiong/tsn-pytorch (and other ImageNet-example descendants).
        extension = ".pth" if os.fspath(path).lower().endswith(".pth.tar") else os.path.splitext(path)[1].lower()
        if extension not in EXTENSIONS:
            raise ValueError(f"{path}: cannot tell the checkpoint format from the extension '{extension}' "
                             f"(known: {', '.join(EXTENSIONS)}); name it with --from / --to")
        name = EXTENSIONS[extension]
    if name not in FORMATS:
        raise ValueError(f"unknown checkpoint format '{name}' (choose from {', '.join(FORMATS)})")
    return FORMATS[name]


def write_atomically(path, fmt, tree):
    """Write to a temporary file next to `path`, then rename: readers never see half a file."""
    directory, base = os.path.split(os.path.abspath(path))
    if not os.path.isdir(directory):
        raise FileNotFoundError(f"{path}: directory {directory} does not exist")
    stem, extension = os.path.splitext(base)
    temporary = os.path.join(directory, f".{stem}.{os.getpid()}.partial{extension}")
    try:
        fmt.write(temporary, tree)
        os.replace(temporary, path)
    finally:
        if os.path.exists(temporary):
            os.remove(temporary)
