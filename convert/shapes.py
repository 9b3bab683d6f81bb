"""Parameter names and shapes of every registered architecture, without a framework.

`expected_shapes` lists what a model built by any backend holds (neutral names), so a
checkpoint can be checked before any framework is imported; `infer_arch` recovers the
architecture and builder arguments from a checkpoint's shapes.
"""
import math

from core.archs import (ARCHS, BLOCK_EXPANSION, I3D_ENDPOINTS, R2PLUS1D_DEPTHS, RESNET_DEPTHS, RESNET_INPLANES,
                        mixed_out_channels, r2plus1d_mid_planes, r2plus1d_stem_mid_planes, scaled)

HEADS = {"resnet": ("fc.weight", "fc.bias"), "r2plus1d": ("fc.weight", "fc.bias"),
         "i3d": ("logits.conv3d.weight", "logits.conv3d.bias")}


def family(arch):
    if arch not in ARCHS:
        raise ValueError(f"unknown architecture '{arch}' (choose from {', '.join(ARCHS)})")
    return "i3d" if arch == "i3d" else "r2plus1d" if arch.startswith("r2plus1d") else "resnet"


def _depth(arch):
    return int(arch.rsplit("_", 1)[-1] if "_" in arch else arch[len("resnet"):])


def _bn(shapes, name, channels):
    for leaf in ("weight", "bias", "running_mean", "running_var"):
        shapes[f"{name}.{leaf}"] = (channels,)


def _conv(shapes, name, out_channels, in_channels, kernel):
    shapes[f"{name}.weight"] = (out_channels, in_channels, *kernel)


def _resnet_block(shapes, name, block, r2plus1d, in_planes, planes):
    if block == "bottleneck":
        _conv(shapes, f"{name}.conv1", planes, in_planes, (1, 1, 1))
        _bn(shapes, f"{name}.bn1", planes)
        convs = [("2", planes, planes)]
    else:
        convs = [("1", in_planes, planes), ("2", planes, planes)]
    for index, conv_in, conv_out in convs:
        if r2plus1d:
            mid = r2plus1d_mid_planes(conv_in, conv_out)
            _conv(shapes, f"{name}.conv{index}_s", mid, conv_in, (1, 3, 3))
            _bn(shapes, f"{name}.bn{index}_s", mid)
            _conv(shapes, f"{name}.conv{index}_t", conv_out, mid, (3, 1, 1))
            _bn(shapes, f"{name}.bn{index}_t", conv_out)
        else:
            _conv(shapes, f"{name}.conv{index}", conv_out, conv_in, (3, 3, 3))
            _bn(shapes, f"{name}.bn{index}", conv_out)
    if block == "bottleneck":
        _conv(shapes, f"{name}.conv3", planes * 4, planes, (1, 1, 1))
        _bn(shapes, f"{name}.bn3", planes * 4)


def _resnet_shapes(arch, n_classes, n_input_channels, widen_factor, conv1_t_size, shortcut_type):
    r2plus1d = family(arch) == "r2plus1d"
    block, layers = RESNET_DEPTHS[_depth(arch)]
    expansion = BLOCK_EXPANSION[block]
    planes = [scaled(width, widen_factor) for width in RESNET_INPLANES]
    in_planes = planes[0]
    shapes = {}
    if r2plus1d:
        mid = r2plus1d_stem_mid_planes(in_planes, conv1_t_size)
        _conv(shapes, "conv1_s", mid, n_input_channels, (1, 7, 7))
        _bn(shapes, "bn1_s", mid)
        _conv(shapes, "conv1_t", in_planes, mid, (conv1_t_size, 1, 1))
        _bn(shapes, "bn1_t", in_planes)
    else:
        _conv(shapes, "conv1", in_planes, n_input_channels, (conv1_t_size, 7, 7))
        _bn(shapes, "bn1", in_planes)
    for stage, (stage_planes, n_blocks) in enumerate(zip(planes, layers), start=1):
        for index in range(n_blocks):
            name = f"layer{stage}.{index}"
            _resnet_block(shapes, name, block, r2plus1d, in_planes, stage_planes)
            # Shortcut 'A' pads channels with zeros: no parameters.
            needs_projection = stage > 1 or in_planes != stage_planes * expansion
            if index == 0 and needs_projection and shortcut_type == "B":
                _conv(shapes, f"{name}.downsample.0", stage_planes * expansion, in_planes, (1, 1, 1))
                _bn(shapes, f"{name}.downsample.1", stage_planes * expansion)
            in_planes = stage_planes * expansion
    shapes["fc.weight"] = (n_classes, in_planes)
    shapes["fc.bias"] = (n_classes,)
    return shapes


def _i3d_shapes(n_classes, n_input_channels, widen_factor):
    shapes, channels = {}, n_input_channels
    for endpoint, spec in I3D_ENDPOINTS:
        if spec[0] == "unit":
            out_channels, kernel = scaled(spec[1], widen_factor), spec[2]
            _conv(shapes, f"{endpoint}.conv3d", out_channels, channels, kernel)
            _bn(shapes, f"{endpoint}.bn", out_channels)
            channels = out_channels
        elif spec[0] == "mixed":
            b0, b1a, b1b, b2a, b2b, b3b = widths = [scaled(w, widen_factor) for w in spec[1]]
            for branch, out_channels, in_channels, kernel in (
                    ("b0", b0, channels, 1), ("b1a", b1a, channels, 1), ("b1b", b1b, b1a, 3),
                    ("b2a", b2a, channels, 1), ("b2b", b2b, b2a, 3), ("b3b", b3b, channels, 1)):
                _conv(shapes, f"{endpoint}.{branch}.conv3d", out_channels, in_channels, (kernel,) * 3)
                _bn(shapes, f"{endpoint}.{branch}.bn", out_channels)
            channels = mixed_out_channels(widths)
    _conv(shapes, "logits.conv3d", n_classes, channels, (1, 1, 1))
    shapes["logits.conv3d.bias"] = (n_classes,)
    return shapes


def expected_shapes(arch, n_classes=400, n_input_channels=3, widen_factor=1.0, conv1_t_size=7,
                    shortcut_type="B", **_forward_only):
    """{neutral name: shape} of `build_model(arch, **kwargs)` in every backend.

    Arguments that change only the forward pass (conv1_t_stride, no_max_pool, dropout) are accepted
    and ignored, so the same kwargs dict serves the builders and this function.
    """
    if family(arch) == "i3d":
        return _i3d_shapes(n_classes, n_input_channels, widen_factor)
    return _resnet_shapes(arch, n_classes, n_input_channels, widen_factor, conv1_t_size, shortcut_type)


# Layers whose output width is exactly scaled(base, widen_factor), used to recover widen_factor.
def _width_probes(arch):
    if family(arch) == "i3d":
        probes = []
        for endpoint, spec in I3D_ENDPOINTS:
            if spec[0] == "unit":
                probes.append((f"{endpoint}.conv3d.weight", spec[1]))
            elif spec[0] == "mixed":
                branches = ("b0", "b1a", "b1b", "b2a", "b2b", "b3b")
                probes += [(f"{endpoint}.{b}.conv3d.weight", w) for b, w in zip(branches, spec[1])]
        return probes
    block = RESNET_DEPTHS[_depth(arch)][0]
    first = "conv1_t" if family(arch) == "r2plus1d" else "conv1"
    stage_conv = "conv1" if block == "bottleneck" or family(arch) == "resnet" else "conv1_t"
    return [(f"{first}.weight", RESNET_INPLANES[0])] + [
        (f"layer{stage}.0.{stage_conv}.weight", base) for stage, base in enumerate(RESNET_INPLANES, start=1)]


def _decimals(low, high, digits):
    step = 10.0 ** -digits
    candidate = round(math.ceil(low / step - 1e-6) * step, digits)
    while candidate < high:
        yield candidate
        candidate = round(candidate + step, digits)


def _widen_factor(arch, shapes):
    """The simplest factor whose scaled() widths reproduce the probed layers (1.0 if none present).

    Simplest: one or two decimals (0.5, 0.25), else the exact ratio (0.0625 = 4 / 64), else more decimals.
    """
    pairs = [(shapes[name][0], base) for name, base in _width_probes(arch) if name in shapes]
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


def infer_kwargs(arch, shapes):
    """Builder kwargs of `arch` that show in the parameter shapes.

    conv1_t_stride, no_max_pool and dropout leave no trace in the weights: builders' defaults apply.
    """
    kwargs = {"widen_factor": _widen_factor(arch, shapes)}
    kind = family(arch)
    head, stem = HEADS[kind][0], {"i3d": "Conv3d_1a_7x7.conv3d.weight", "r2plus1d": "conv1_s.weight",
                                  "resnet": "conv1.weight"}[kind]
    if head in shapes:
        kwargs["n_classes"] = shapes[head][0]
    if stem in shapes:
        kwargs["n_input_channels"] = shapes[stem][1]
    if kind != "i3d":
        temporal_stem = "conv1_t.weight" if kind == "r2plus1d" else "conv1.weight"
        if temporal_stem in shapes:
            kwargs["conv1_t_size"] = shapes[temporal_stem][2]
        kwargs["shortcut_type"] = "B" if any(".downsample." in name for name in shapes) else "A"
    return kwargs


def infer_arch(shapes):
    """(arch, model_kwargs) from a neutral {name: shape} (or {name: array}) dict."""
    shapes = {name: tuple(getattr(value, "shape", value)) for name, value in shapes.items()}
    if "Conv3d_1a_7x7.conv3d.weight" in shapes:
        return "i3d", infer_kwargs("i3d", shapes)
    if "conv1_s.weight" in shapes:
        kind = "r2plus1d"
    elif "conv1.weight" in shapes:
        kind = "resnet"
    else:
        raise ValueError("cannot tell the architecture from the parameter names (no conv1 / conv1_s / "
                         "Conv3d_1a_7x7 weights); pass --arch")
    layers = tuple(len({name.split(".")[1] for name in shapes if name.startswith(f"layer{stage}.")})
                   for stage in range(1, 5))
    block = "bottleneck" if "layer1.0.conv3.weight" in shapes else "basic"
    depths = [depth for depth, spec in RESNET_DEPTHS.items() if spec == (block, layers)]
    arch = (f"r2plus1d_{depths[0]}" if kind == "r2plus1d" else f"resnet{depths[0]}") if depths else None
    if arch not in ARCHS or (kind == "r2plus1d" and depths[0] not in R2PLUS1D_DEPTHS):
        raise ValueError(f"no registered {kind} has {block} blocks {layers} per stage; pass --arch")
    return arch, infer_kwargs(arch, shapes)
