"""Checkpoint file formats: a file <-> a tree of dicts whose leaves are numpy arrays.

Only `.pth` needs its framework (torch, imported when used); `.ckpt` (convert/ckpt.py),
`.pdparams`, `.npz` and `.safetensors` are read and written without one.
A format also knows its framework's spelling of the neutral parameter names.
"""
import os
import pickle
import struct
import zipfile
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


def _read_npz(path):
    with np.load(path, allow_pickle=False) as archive:
        return {name: archive[name] for name in archive.files}


def _write_npz(path, tree):
    with open(path, "wb") as file:
        np.savez(file, **tree)


def _read_safetensors(path):
    from safetensors.numpy import load_file
    return load_file(path)


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
        extension = os.path.splitext(path)[1].lower()
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
