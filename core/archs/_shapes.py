"""Helpers the family specs share to list parameter shapes and read builder arguments back from them."""
import math


def scaled(channels, widen_factor):
    """Channel count under a width multiplier (never below 1)."""
    return max(1, int(channels * widen_factor))


def batchnorm(shapes, name, channels):
    for leaf in ("weight", "bias", "running_mean", "running_var"):
        shapes[f"{name}.{leaf}"] = (channels,)


def conv(shapes, name, out_channels, in_channels, kernel):
    shapes[f"{name}.weight"] = (out_channels, in_channels, *kernel)


def _decimals(low, high, digits):
    step = 10.0 ** -digits
    candidate = round(math.ceil(low / step - 1e-6) * step, digits)
    while candidate < high:
        yield candidate
        candidate = round(candidate + step, digits)


def widen_factor(pairs):
    """The simplest factor whose scaled() widths give every (channels, base width) pair (1.0 if none).

    Simplest: one or two decimals (0.5, 0.25), else the exact ratio (0.0625 = 4 / 64), else more decimals.
    """
    if not pairs:
        return 1.0
    low = max(channels / base for channels, base in pairs)
    high = min((channels + 1) / base for channels, base in pairs)
    candidates = [*_decimals(low, high, 1), *_decimals(low, high, 2), low,
                  *(value for digits in range(3, 7) for value in _decimals(low, high, digits))]
    for candidate in candidates:
        if all(scaled(base, candidate) == channels for channels, base in pairs):
            return candidate
    return low  # inconsistent widths: the shape check that follows lists them


def resnet3d_kwargs(shapes, stem, planes):
    """widen_factor, n_classes and n_input_channels of MMAction2's ResNet3d tree (I3D-ResNet, CSN) from its
    stem's and stages' widths, `fc_cls` and conv1; dropout leaves no trace in the weights."""
    probes = [("conv1.conv.weight", stem)] + [(f"layer{stage}.0.conv1.conv.weight", base)
                                              for stage, base in enumerate(planes, start=1)]
    kwargs = {"widen_factor": widen_factor([(shapes[name][0], base) for name, base in probes if name in shapes])}
    if "fc_cls.weight" in shapes:
        kwargs["n_classes"] = shapes["fc_cls.weight"][0]
    if "conv1.conv.weight" in shapes:
        kwargs["n_input_channels"] = shapes["conv1.conv.weight"][1]
    return kwargs
