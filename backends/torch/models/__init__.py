"""Model registry: every architecture of core.archs.ARCHS, built by name."""
from . import i3d, r2plus1d, resnet

MODELS = {
    "resnet10": resnet.resnet10,
    "resnet18": resnet.resnet18,
    "resnet34": resnet.resnet34,
    "resnet50": resnet.resnet50,
    "resnet101": resnet.resnet101,
    "resnet152": resnet.resnet152,
    "resnet200": resnet.resnet200,
    "r2plus1d_18": r2plus1d.r2plus1d_18,
    "r2plus1d_34": r2plus1d.r2plus1d_34,
    "r2plus1d_50": r2plus1d.r2plus1d_50,
    "i3d": i3d.i3d,
}


def build_model(arch, **kwargs):
    """Build `arch` (a name of MODELS) with the builder keyword arguments (n_classes, widen_factor, ...)."""
    if arch not in MODELS:
        raise ValueError(f"unknown model '{arch}' (known: {', '.join(MODELS)})")
    return MODELS[arch](**kwargs)
