"""MindSpore models <-> neutral parameter dicts, and `.ckpt` files.

Neutral form (core.state_dict): `{torch name: numpy array}` without
`num_batches_tracked`, Linear weights as (out, in). MindSpore differs only in
the BatchNorm leaves (`bn.bn2d.gamma`, ...), renamed by from_mindspore.
"""
import os

import mindspore as ms
import numpy as np

from convert import read_state
from core.state_dict import check_state, from_mindspore

OPTIMIZER_PREFIX = "optimizer."
# Read here; every other format convert knows goes through convert.read_state.
NATIVE_SUFFIXES = (".ckpt",)


def to_numpy_state(model):
    """The model's parameters and BatchNorm statistics as a neutral dict."""
    return from_mindspore({name: param.asnumpy().copy() for name, param in model.parameters_and_names()})


def load_numpy_state(model, state, strict=True):
    """Copy a neutral dict into `model`.

    strict=True: the names and shapes must match exactly. strict=False: load the names
    both sides have and leave the rest; shapes of those must still match. Either way a
    misfit raises core.state_dict.StateDictMismatch listing every offending key.
    """
    params = dict(model.parameters_and_names())
    ms_names = dict(zip(from_mindspore(params), params))  # neutral name -> MindSpore name
    expected = {name: tuple(params[ms_name].shape) for name, ms_name in ms_names.items()}
    given = {name: tuple(np.shape(value)) for name, value in state.items()}
    if not strict:
        expected = {name: shape for name, shape in expected.items() if name in given}
        given = {name: shape for name, shape in given.items() if name in expected}
    check_state(expected, given)
    for name in expected:
        param = params[ms_names[name]]
        param.set_data(ms.Tensor(np.ascontiguousarray(state[name]), dtype=param.dtype))


def load_pretrained(path):
    """Read a weights file into a neutral dict: `.ckpt` here, other formats through convert."""
    return read_state(path, NATIVE_SUFFIXES, _read_ckpt)


def _read_ckpt(path):
    """Read a `.ckpt` file (mindspore.save_checkpoint) into a neutral dict."""
    if not os.path.isfile(path):
        raise FileNotFoundError(f"{path}: no such checkpoint file")
    try:
        state = ms.load_checkpoint(path)
    except (ValueError, RuntimeError) as error:
        raise ValueError(f"{path}: not a MindSpore checkpoint that can be read ({error})") from error
    # Training checkpoints also hold optimizer state and metadata (engine.save): not model weights.
    return from_mindspore({name: param.asnumpy() for name, param in state.items()
                           if isinstance(param, ms.Tensor) and not name.startswith(OPTIMIZER_PREFIX)})
