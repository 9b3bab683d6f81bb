"""Read pickled parameter files (Paddle `.pdparams`, `.pdopt`) without running their code or trusting their sizes.

A pickle may name any importable callable and the loader calls it, so
`pickle.load` on a downloaded checkpoint can run anything. Parameter and
optimizer files only need numpy arrays in plain containers (what paddle.save
writes for a model's or an optimizer's state_dict); this loader resolves exactly
those globals and refuses every other one before calling anything.

A pickle also states the lengths of its byte strings and the shapes of its
arrays, and the unpickler would allocate whatever they claim. Every read is
bounded by what is left in the file and every array by the file's size, so a
file of N bytes never makes the loader hold much more than 2 N.
"""
import codecs
import collections
import os
import pickle

import numpy as np
from numpy.core import multiarray


class UnsafePickleError(pickle.UnpicklingError):
    """The file references something other than numpy arrays and plain containers."""


_NDARRAY = type("ndarray", (), {"__doc__": "Stands for numpy.ndarray in a pickle, where it is never called."})


class _BoundedFile:
    """A file whose reads refuse to ask for more bytes than it has left (the unpickler allocates what it asks)."""

    def __init__(self, file, path, size):
        self.file, self.path, self.left = file, path, size

    def _check(self, size):
        if size > self.left:
            raise pickle.UnpicklingError(f"{self.path}: not a readable pickle file "
                                         f"({size} bytes announced, {self.left} left in the file)")

    def read(self, size=-1):
        if size is None or size < 0:
            size = self.left
        self._check(size)
        data = self.file.read(size)
        self.left -= len(data)
        return data

    def readinto(self, buffer):
        view = memoryview(buffer).cast("B")
        self._check(len(view))
        count = self.file.readinto(view)
        self.left -= count
        return count

    def readline(self):
        data = self.file.readline(self.left)
        self.left -= len(data)
        return data


class _ArrayUnpickler(pickle._Unpickler):  # the Python unpickler: the C one allocates a claimed length before reading
    def __init__(self, file, path, size):
        super().__init__(_BoundedFile(file, path, size))
        self.path, self.size = path, size
        self.allowed = {
            ("numpy.core.multiarray", "_reconstruct"): self._reconstruct,
            ("numpy._core.multiarray", "_reconstruct"): self._reconstruct,
            ("numpy.core.multiarray", "scalar"): self._scalar,
            ("numpy._core.multiarray", "scalar"): self._scalar,
            # Only ever _reconstruct's first argument: calling np.ndarray would allocate any shape.
            ("numpy", "ndarray"): _NDARRAY,
            ("numpy", "dtype"): self._dtype,
            ("collections", "OrderedDict"): collections.OrderedDict,
            # Protocol 2 files (Paddle 1.x, Python 2 era) encode bytes with _codecs.encode.
            ("_codecs", "encode"): self._latin1,
        }

    def find_class(self, module, name):
        try:
            return self.allowed[(module, name)]
        except KeyError:
            raise UnsafePickleError(
                f"{self.path}: refusing to load {module}.{name}; a parameter file may only hold "
                "numpy arrays in dicts, lists and tuples") from None

    def _dtype(self, *args):
        dtype = np.dtype(*args)
        if dtype.hasobject:
            raise UnsafePickleError(f"{self.path}: refusing an array of Python objects; a parameter file "
                                    "may only hold numeric arrays")
        return dtype

    def _reconstruct(self, subtype, shape, dtype):
        if subtype is not _NDARRAY:
            raise UnsafePickleError(f"{self.path}: refusing to rebuild a {subtype!r}; only numpy arrays")
        dtype = self._dtype(dtype)
        if np.prod(shape, dtype=np.float64) * max(dtype.itemsize, 1) > self.size:
            raise pickle.UnpicklingError(f"{self.path}: not a readable pickle file (an array of shape {shape} "
                                         f"{dtype} announced in a file of {self.size} bytes)")
        return multiarray._reconstruct(np.ndarray, shape, dtype)

    def _latin1(self, text, encoding):
        if encoding != "latin1":
            raise UnsafePickleError(f"{self.path}: refusing _codecs.encode with '{encoding}'; only latin1 bytes")
        return codecs.encode(text, encoding)

    def _scalar(self, dtype, *data):
        return multiarray.scalar(self._dtype(dtype), *data)


def load(path):
    """Unpickle `path`, admitting only numpy arrays, numpy scalars and plain containers.

    Raises UnsafePickleError for anything that would run code, pickle.UnpicklingError naming `path`
    for a truncated, damaged or lying file.
    """
    size = os.path.getsize(path)
    if size == 0:
        raise pickle.UnpicklingError(f"{path}: not a readable pickle file (the file is empty)")
    with open(path, "rb") as file:
        try:
            return _ArrayUnpickler(file, path, size).load()
        except pickle.UnpicklingError as error:
            if str(error).startswith(str(path)):
                raise
            raise pickle.UnpicklingError(f"{path}: not a readable pickle file ({error})") from None
        except Exception as error:  # truncated or not a pickle at all
            raise pickle.UnpicklingError(
                f"{path}: not a readable pickle file ({type(error).__name__}: {error})") from None
