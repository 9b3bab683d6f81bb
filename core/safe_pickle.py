"""Read pickled parameter files (Paddle `.pdparams`) without running their code.

A pickle may name any importable callable and the loader calls it, so
`pickle.load` on a downloaded checkpoint can run anything. Parameter files
only need numpy arrays in plain containers; this loader resolves exactly
those globals and refuses every other one before calling anything.
"""
import codecs
import collections
import pickle

import numpy as np
from numpy.core import multiarray

# (module, name) a parameter file may reference. numpy 2 writes `numpy._core`;
# protocol 2 files (Paddle 1.x, Python 2 era) encode bytes with _codecs.encode.
_ALLOWED = {
    ("numpy.core.multiarray", "_reconstruct"): multiarray._reconstruct,
    ("numpy._core.multiarray", "_reconstruct"): multiarray._reconstruct,
    ("numpy.core.multiarray", "scalar"): multiarray.scalar,
    ("numpy._core.multiarray", "scalar"): multiarray.scalar,
    ("numpy", "ndarray"): np.ndarray,
    ("numpy", "dtype"): np.dtype,
    ("collections", "OrderedDict"): collections.OrderedDict,
    ("_codecs", "encode"): codecs.encode,
}


class UnsafePickleError(pickle.UnpicklingError):
    """The file references something other than numpy arrays and plain containers."""


class _ArrayUnpickler(pickle.Unpickler):
    def __init__(self, file, source):
        super().__init__(file)
        self.source = source

    def find_class(self, module, name):
        try:
            return _ALLOWED[(module, name)]
        except KeyError:
            raise UnsafePickleError(
                f"{self.source}: refusing to load {module}.{name}; a parameter file may only hold "
                "numpy arrays in dicts, lists and tuples") from None


def load(path):
    """Unpickle `path`, admitting only numpy arrays, numpy scalars and plain containers."""
    with open(path, "rb") as file:
        try:
            return _ArrayUnpickler(file, path).load()
        except UnsafePickleError:
            raise
        except Exception as error:  # truncated or not a pickle at all
            raise pickle.UnpicklingError(f"{path}: not a readable pickle file ({error})") from error
