"""Neutral parameter dicts and the three frameworks' leaf spellings.

The neutral form is a flat `{name: numpy array}` with PyTorch names, no
`num_batches_tracked`, Linear weights as (out, in). Paddle and MindSpore
differ only in leaf names and Paddle's Linear layout (DESIGN.md).
"""
import numpy as np

# torch leaf -> paddle leaf / mindspore leaf, for BatchNorm parameters.
_BN_PADDLE = {"running_mean": "_mean", "running_var": "_variance"}
_BN_MINDSPORE = {"weight": "bn2d.gamma", "bias": "bn2d.beta",
                 "running_mean": "bn2d.moving_mean", "running_var": "bn2d.moving_variance"}


class StateDictMismatch(ValueError):
    """A parameter dict that does not fit a model; lists every offending key."""

    def __init__(self, missing=(), unexpected=(), mis_shaped=(), source=""):
        self.missing, self.unexpected, self.mis_shaped = list(missing), list(unexpected), list(mis_shaped)
        lines = [f"checkpoint{' ' + source if source else ''} does not fit the model:"]
        if self.missing:
            lines.append(f"  missing keys ({len(self.missing)}): " + ", ".join(self.missing))
        if self.unexpected:
            lines.append(f"  unexpected keys ({len(self.unexpected)}): " + ", ".join(self.unexpected))
        for name, want, got in self.mis_shaped:
            lines.append(f"  mis-shaped: {name}: model {tuple(want)}, checkpoint {tuple(got)}")
        super().__init__("\n".join(lines))


def check_state(expected_shapes, given_shapes, source=""):
    """Raise StateDictMismatch unless both {name: shape} maps agree exactly."""
    missing = [k for k in expected_shapes if k not in given_shapes]
    unexpected = [k for k in given_shapes if k not in expected_shapes]
    mis_shaped = [(k, expected_shapes[k], given_shapes[k]) for k in expected_shapes
                  if k in given_shapes and tuple(expected_shapes[k]) != tuple(given_shapes[k])]
    if missing or unexpected or mis_shaped:
        raise StateDictMismatch(missing, unexpected, mis_shaped, source)


def names_to_load(expected_shapes, state, strict=True, source=""):
    """The names of `state` to copy into a model holding `expected_shapes`.

    strict=True: names and shapes must match exactly. strict=False: the names both sides have, whose
    shapes must still match. Either way a misfit raises StateDictMismatch listing every offending key.
    """
    given = {name: tuple(np.shape(value)) for name, value in state.items()}
    expected = {name: tuple(shape) for name, shape in expected_shapes.items()}
    if not strict:
        expected = {name: shape for name, shape in expected.items() if name in given}
        given = {name: shape for name, shape in given.items() if name in expected}
    check_state(expected, given, source)
    return list(expected)


def strip_prefix(state, prefix="module."):
    """Drop DataParallel's `module.` prefix when every key has it."""
    if state and all(k.startswith(prefix) for k in state):
        return {k[len(prefix):]: v for k, v in state.items()}
    return state


def drop_batch_counters(state):
    return {k: v for k, v in state.items() if not k.endswith("num_batches_tracked")}


def is_linear_weight(name, value):
    """Linear layers are the 2-D weights (convs are 5-D)."""
    return name.endswith(".weight") and np.ndim(value) == 2


def _split(name):
    parent, _, leaf = name.rpartition(".")
    return parent, leaf


def _bn_parents(names):
    """Modules that own a running mean are BatchNorms (in any spelling)."""
    parents = set()
    for name in names:
        parent, leaf = _split(name)
        if leaf in ("running_mean", "_mean"):
            parents.add(parent)
        elif name.endswith(".bn2d.moving_mean"):
            parents.add(name[: -len(".bn2d.moving_mean")])
    return parents


def to_paddle(state):
    """Neutral -> Paddle names and layouts."""
    out = {}
    for name, value in state.items():
        parent, leaf = _split(name)
        if leaf in _BN_PADDLE:
            name = f"{parent}.{_BN_PADDLE[leaf]}"
        elif is_linear_weight(name, value):
            value = np.ascontiguousarray(np.transpose(value))
        out[name] = value
    return out


def from_paddle(state):
    """Paddle names and layouts -> neutral."""
    inverse = {v: k for k, v in _BN_PADDLE.items()}
    out = {}
    for name, value in state.items():
        parent, leaf = _split(name)
        if leaf in inverse:
            name = f"{parent}.{inverse[leaf]}"
        elif is_linear_weight(name, value):
            value = np.ascontiguousarray(np.transpose(value))
        out[name] = value
    return out


def to_mindspore(state):
    """Neutral -> MindSpore names (nn.BatchNorm3d keeps its parameters in `bn2d`)."""
    bns = _bn_parents(state)
    out = {}
    for name, value in state.items():
        parent, leaf = _split(name)
        if parent in bns and leaf in _BN_MINDSPORE:
            name = f"{parent}.{_BN_MINDSPORE[leaf]}"
        out[name] = value
    return out


def neutral_name_from_mindspore(name):
    for torch_leaf, ms_leaf in _BN_MINDSPORE.items():
        if name.endswith("." + ms_leaf):
            return name[: -len(ms_leaf)] + torch_leaf
    return name


def from_mindspore(state):
    """MindSpore names -> neutral."""
    return {neutral_name_from_mindspore(name): value for name, value in state.items()}
