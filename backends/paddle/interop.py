"""numpy <-> Paddle: neutral states in and out of a model, a forward pass, every layer's output.

Neutral form (core.state_dict): `{torch name: numpy array}` without `num_batches_tracked`, Linear weights
as (out, in). Paddle names the BatchNorm statistics `_mean` / `_variance` and stores Linear weights as (in, out).
"""
import numpy as np
import paddle

from core.state_dict import from_paddle, names_to_load, to_paddle


def tensor(array):
    """A framework tensor of a numpy array."""
    return paddle.to_tensor(np.ascontiguousarray(array))


def numpy(tensor):
    return tensor.numpy()


def to_numpy_state(model):
    """The model's parameters and BatchNorm statistics as a neutral dict."""
    return from_paddle({name: value.numpy() for name, value in model.state_dict().items()})


def load_numpy_state(model, state, strict=True):
    """Copy a neutral dict into `model` (core.state_dict.names_to_load says what strict means)."""
    names = names_to_load({name: value.shape for name, value in to_numpy_state(model).items()}, state, strict)
    own = model.state_dict()
    for name, value in to_paddle({name: np.asarray(state[name]) for name in names}).items():
        # set_value refuses another dtype (a float64 array into a float32 parameter).
        own[name].set_value(paddle.to_tensor(value, dtype=own[name].dtype))


def forward(model, clip):
    """Eval-mode logits of a numpy clip batch."""
    model.eval()
    with paddle.no_grad():
        return model(paddle.to_tensor(np.ascontiguousarray(clip))).astype("float32").numpy()


def capture_layers(model, clip, record):
    """Run `clip` in eval mode calling record(name)(output as numpy) after each named sublayer; return the logits."""
    for name, layer in model.named_sublayers():
        callback = record(name)
        layer.register_forward_post_hook(lambda layer, inputs, output, c=callback: c(output.numpy().copy()))
    return forward(model, clip)
