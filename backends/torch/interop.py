"""numpy <-> PyTorch: neutral states in and out of a model, a forward pass, every layer's output.

Neutral form (core.state_dict): `{torch name: numpy array}` without `num_batches_tracked`, Linear weights
as (out, in).
"""
import numpy as np
import torch

from core.state_dict import drop_batch_counters, names_to_load


def tensor(array):
    """A framework tensor of a numpy array."""
    return torch.from_numpy(np.ascontiguousarray(array))


def numpy(tensor):
    return tensor.detach().cpu().numpy()


def to_numpy_state(model):
    """The model's parameters and BatchNorm statistics as a neutral dict."""
    return {name: value.detach().cpu().numpy().copy()
            for name, value in drop_batch_counters(model.state_dict()).items()}


def load_numpy_state(model, state, strict=True):
    """Copy a neutral dict into `model` (core.state_dict.names_to_load says what strict means)."""
    own = drop_batch_counters(model.state_dict())
    names = names_to_load({name: value.shape for name, value in own.items()}, state, strict)
    # num_batches_tracked is not part of the neutral form: the model keeps its own.
    model.load_state_dict({name: torch.from_numpy(np.ascontiguousarray(state[name])) for name in names},
                          strict=False)


def forward(model, clip):
    """Eval-mode logits of a numpy clip batch."""
    model.eval()
    device = next(model.parameters()).device
    with torch.no_grad():
        return model(torch.from_numpy(np.ascontiguousarray(clip)).to(device)).float().cpu().numpy()


def capture_layers(model, clip, record):
    """Run `clip` in eval mode calling record(name)(output as numpy) after each named module; return the logits."""
    for name, module in model.named_modules():
        if name:
            callback = record(name)
            # clone: an in-place ReLU would overwrite the recorded tensor afterwards.
            module.register_forward_hook(lambda layer, inputs, output, c=callback: c(output.detach().clone().numpy()))
    return forward(model, clip)
