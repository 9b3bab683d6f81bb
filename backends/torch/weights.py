"""PyTorch models <-> neutral parameter dicts, and the community checkpoint files.

Neutral form (core.state_dict): `{torch name: numpy array}` without
`num_batches_tracked`, Linear weights as (out, in).
"""
import pickle

import numpy as np
import torch

from convert import read_state
from core.state_dict import check_state, drop_batch_counters, strip_prefix

# Read here; every other format convert knows goes through convert.read_state.
NATIVE_SUFFIXES = (".pth", ".pt")


def to_numpy_state(model):
    """The model's parameters and BatchNorm statistics as a neutral dict."""
    return {name: value.detach().cpu().numpy().copy()
            for name, value in drop_batch_counters(model.state_dict()).items()}


def load_numpy_state(model, state, strict=True):
    """Copy a neutral dict into `model`.

    strict=True: the names and shapes must match exactly. strict=False: load the names
    both sides have and leave the rest; shapes of those must still match. Either way a
    misfit raises core.state_dict.StateDictMismatch listing every offending key.
    """
    expected = {name: tuple(value.shape) for name, value in drop_batch_counters(model.state_dict()).items()}
    given = {name: tuple(np.shape(value)) for name, value in state.items()}
    if not strict:
        expected = {name: shape for name, shape in expected.items() if name in given}
        given = {name: shape for name, shape in given.items() if name in expected}
    check_state(expected, given)
    tensors = {name: torch.from_numpy(np.ascontiguousarray(state[name])) for name in expected}
    # num_batches_tracked is not part of the neutral form: the model keeps its own.
    model.load_state_dict(tensors, strict=False)


def load_pretrained(path):
    """Read a weights file into a neutral dict: PyTorch files here, other formats through convert."""
    return read_state(path, NATIVE_SUFFIXES, _read_torch_file)


def _read_torch_file(path):
    """Read a community PyTorch checkpoint into a neutral dict.

    Accepts kenshohara's `{'epoch', 'arch', 'state_dict', 'optimizer', 'scheduler'}` files
    (with or without DataParallel's `module.` prefix) and piergiaj's bare state dicts.
    Only tensors and plain containers are unpickled (weights_only=True).
    """
    try:
        checkpoint = torch.load(path, map_location="cpu", weights_only=True)
    except (pickle.UnpicklingError, RuntimeError, EOFError) as error:
        # torch's message is a page long; keep the line that names the refused object.
        detail = next((line.strip().split(". Please")[0] for line in str(error).splitlines()
                       if "Unsupported" in line), "")
        raise ValueError(f"{path}: not a PyTorch checkpoint that can be read safely (only tensors and plain "
                         f"containers are unpickled){': ' + detail if detail else ''}") from error
    state = checkpoint.get("state_dict", checkpoint) if isinstance(checkpoint, dict) else None
    if not state or not all(torch.is_tensor(value) for value in state.values()):
        raise ValueError(f"{path}: neither a kenshohara checkpoint (with 'state_dict') nor a bare state dict "
                         f"of tensors")
    state = drop_batch_counters(strip_prefix(state))
    return {name: value.detach().float().numpy() for name, value in state.items()}
