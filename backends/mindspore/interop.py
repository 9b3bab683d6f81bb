"""numpy <-> MindSpore: neutral states in and out of a model, a forward pass, every layer's output.

Neutral form (core.state_dict): `{torch name: numpy array}` without `num_batches_tracked`, Linear weights
as (out, in). MindSpore differs only in the BatchNorm leaves (`bn.bn2d.gamma`, ...), renamed by from_mindspore.
"""
import mindspore as ms
import numpy as np

from core.state_dict import from_mindspore, names_to_load


def tensor(array):
    """A framework tensor of a numpy array."""
    return ms.Tensor(np.ascontiguousarray(array))


def numpy(tensor):
    return tensor.asnumpy()


def to_numpy_state(model):
    """The model's parameters and BatchNorm statistics as a neutral dict."""
    return from_mindspore({name: param.asnumpy().copy() for name, param in model.parameters_and_names()})


def load_numpy_state(model, state, strict=True):
    """Copy a neutral dict into `model` (core.state_dict.names_to_load says what strict means)."""
    params = dict(model.parameters_and_names())
    ms_names = dict(zip(from_mindspore(params), params))  # neutral name -> MindSpore name
    names = names_to_load({name: params[ms_name].shape for name, ms_name in ms_names.items()}, state, strict)
    for name in names:
        param = params[ms_names[name]]
        param.set_data(ms.Tensor(np.ascontiguousarray(state[name]), dtype=param.dtype))


def forward(model, clip):
    """Eval-mode logits of a numpy clip batch."""
    model.set_train(False)
    return model(ms.Tensor(np.ascontiguousarray(clip))).asnumpy()


def capture_layers(model, clip, record):
    """Run `clip` in eval mode calling record(name)(output as numpy) after each named cell; return the logits."""
    ms.set_context(mode=ms.PYNATIVE_MODE)  # hooks run in PyNative only
    for name, cell in model.cells_and_names():
        # MindSpore's BatchNorm3d runs an inner BatchNorm2d cell `bn2d` on a reshaped tensor: an implementation
        # detail that torch and Paddle have no layer for.
        if name and not name.endswith(".bn2d"):
            callback = record(name)
            cell.register_forward_hook(lambda cell, inputs, output, c=callback: c(output.asnumpy().copy()))
    return forward(model, clip)
