"""This backend's models: one file per architecture family of core.archs, each with build(spec, **kwargs)."""
from core import archs


def build_model(arch, **kwargs):
    """Build registered `arch` with the builder keyword arguments (n_classes, n_input_channels, widen_factor, ...)."""
    return archs.build(__name__, arch, kwargs)
