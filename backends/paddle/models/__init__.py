"""Model registry: every architecture of core.archs.ARCHS, built by name."""
from .i3d import i3d
from .r2plus1d import r2plus1d_18, r2plus1d_34, r2plus1d_50
from .resnet import resnet10, resnet18, resnet34, resnet50, resnet101, resnet152, resnet200

MODELS = {
    "resnet10": resnet10,
    "resnet18": resnet18,
    "resnet34": resnet34,
    "resnet50": resnet50,
    "resnet101": resnet101,
    "resnet152": resnet152,
    "resnet200": resnet200,
    "r2plus1d_18": r2plus1d_18,
    "r2plus1d_34": r2plus1d_34,
    "r2plus1d_50": r2plus1d_50,
    "i3d": i3d,
}


def build_model(arch, **kwargs):
    """Build `arch` (a name of MODELS) with the builder keyword arguments (n_classes, widen_factor, ...)."""
    if arch not in MODELS:
        raise ValueError(f"unknown model '{arch}' (known: {', '.join(MODELS)})")
    return MODELS[arch](**kwargs)
