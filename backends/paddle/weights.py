"""Paddle models <-> neutral parameter dicts, and `.pdparams` files.

Neutral form (core.state_dict): `{torch name: numpy array}` without
`num_batches_tracked`, Linear weights as (out, in). Paddle names the BatchNorm
statistics `_mean` / `_variance` and stores Linear weights as (in, out).
"""
import numpy as np
import paddle

from convert import read_state
from core import safe_pickle
from core.state_dict import check_state, from_paddle, strip_prefix, to_paddle

# paddle.save and fluid.save_dygraph add this table of internal names; it is no parameter.
PADDLE_NAME_TABLE = "StructuredToParameterName@@"
# Read here; every other format convert knows goes through convert.read_state.
NATIVE_SUFFIXES = (".pdparams",)


def to_numpy_state(model):
    """The model's parameters and BatchNorm statistics as a neutral dict."""
    return from_paddle({name: value.numpy() for name, value in model.state_dict().items()})


def load_numpy_state(model, state, strict=True):
    """Copy a neutral dict into `model`.

    strict=True: the names and shapes must match exactly. strict=False: load the names
    both sides have and leave the rest; shapes of those must still match. Either way a
    misfit raises core.state_dict.StateDictMismatch listing every offending key.
    """
    expected = {name: value.shape for name, value in to_numpy_state(model).items()}
    given = {name: tuple(np.shape(value)) for name, value in state.items()}
    if not strict:
        expected = {name: shape for name, shape in expected.items() if name in given}
        given = {name: shape for name, shape in given.items() if name in expected}
    check_state(expected, given)
    own = model.state_dict()
    for name, value in to_paddle({name: np.asarray(state[name]) for name in expected}).items():
        # set_value refuses another dtype (a float64 array into a float32 parameter).
        own[name].set_value(paddle.to_tensor(value, dtype=own[name].dtype))


def load_pretrained(path):
    """Read a weights file into a neutral dict: `.pdparams` here, other formats through convert."""
    return read_state(path, NATIVE_SUFFIXES, _read_pdparams)


def _read_pdparams(path):
    """Read a `.pdparams` file into a neutral dict.

    Accepts what paddle.save / fluid.save_dygraph write for a state dict and the plain pickled
    dict of numpy arrays of the PaddlePaddle 3D-ResNets port (with or without a `module.` prefix).
    Only numpy arrays and plain containers are unpickled (core.safe_pickle).
    """
    state = safe_pickle.load(path)
    if isinstance(state, dict):
        state = {name: value for name, value in state.items() if name != PADDLE_NAME_TABLE}
    if not isinstance(state, dict) or not state or not all(isinstance(v, np.ndarray) for v in state.values()):
        raise ValueError(f"{path}: not a Paddle state dict (a dict of parameter arrays)")
    return from_paddle(strip_prefix(state))
