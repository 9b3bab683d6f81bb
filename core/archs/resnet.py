"""3D ResNets and R(2+1)D, as kenshohara/3D-ResNets-PyTorch models/resnet.py and models/resnet2p1d.py
(master, the 2020 rewrite behind his r3d*_K_200ep.pth / r2p1d*_K_200ep.pth releases).

One family, as torchvision's VideoResNet: the same stages, blocks and head, where R(2+1)D factorises every
3x3x3 conv into a spatial 1x3x3 conv (`*_s`) and a temporal 3x1x1 conv (`*_t`) with BatchNorm and ReLU
between them, their middle width keeping the 3D conv's parameter count.
"""
from core.archs import WIDEN_FACTOR, ArchSpec, Option, register
from core.archs._shapes import batchnorm, conv, scaled, widen_factor

# depth -> (block, blocks per stage); kenshohara's generate_model().
DEPTHS = {
    10: ("basic", (1, 1, 1, 1)),
    18: ("basic", (2, 2, 2, 2)),
    34: ("basic", (3, 4, 6, 3)),
    50: ("bottleneck", (3, 4, 6, 3)),
    101: ("bottleneck", (3, 4, 23, 3)),
    152: ("bottleneck", (3, 8, 36, 3)),
    200: ("bottleneck", (3, 24, 36, 3)),
}
R2PLUS1D_DEPTHS = (18, 34, 50)
EXPANSION = {"basic": 1, "bottleneck": 4}
INPLANES = (64, 128, 256, 512)

OPTIONS = {
    "widen_factor": WIDEN_FACTOR,
    "conv1_t_size": Option("conv1_t_size", 7, "temporal kernel size of conv1"),
    "conv1_t_stride": Option("conv1_t_stride", 1, "temporal stride of conv1"),
    "no_max_pool": Option("no_max_pool", False, "skip the max pooling after conv1"),
    "shortcut_type": Option("resnet_shortcut", "B", "shortcut type of resnet blocks", ("A", "B")),
}
HEAD = ("fc.weight", "fc.bias")


def needs_downsample(in_planes, out_planes, stride):
    """Whether a block's shortcut must change its input: a stride, or another width."""
    return stride != 1 or in_planes != out_planes


def mid_planes(in_planes, planes, t_size=3, s_size=3):
    """kenshohara's R(2+1)D intermediate width: keeps the 3D conv's parameter count."""
    return (in_planes * planes * t_size * s_size * s_size) // (in_planes * s_size * s_size + t_size * planes)


def stem_mid_planes(in_planes, conv1_t_size):
    # kenshohara's code counts 3 input channels here whatever n_input_channels is.
    return (3 * in_planes * conv1_t_size * 7 * 7) // (3 * 7 * 7 + conv1_t_size * in_planes)


def stem_convs(is_2plus1d, n_input_channels, planes, conv1_t_size, conv1_t_stride):
    """The stem's convs in order, each (suffix, in, out, kernel, stride, padding); each is followed by its
    BatchNorm `bn<suffix>` and a ReLU."""
    if is_2plus1d:
        mid = stem_mid_planes(planes, conv1_t_size)
        return [("1_s", n_input_channels, mid, (1, 7, 7), (1, 2, 2), (0, 3, 3)),
                ("1_t", mid, planes, (conv1_t_size, 1, 1), (conv1_t_stride, 1, 1), (conv1_t_size // 2, 0, 0))]
    return [("1", n_input_channels, planes, (conv1_t_size, 7, 7), (conv1_t_stride, 2, 2), (conv1_t_size // 2, 3, 3))]


def block_convs(block, is_2plus1d, in_planes, planes, stride):
    """A block's convs in order, each (suffix, in, out, kernel, stride, padding) followed by its BatchNorm
    `bn<suffix>`; a ReLU follows each but the last, whose output is added to the shortcut, then a ReLU.
    The block's first 3x3x3 conv (conv1 of a basic block, conv2 of a bottleneck) takes the stride; R(2+1)D
    factorises it into a spatial conv with the spatial stride and a temporal one with the temporal stride."""
    if block == "bottleneck":
        plain = [("1", in_planes, planes, 1), ("2", planes, planes, 3), ("3", planes, planes * EXPANSION[block], 1)]
    else:
        plain = [("1", in_planes, planes, 3), ("2", planes, planes, 3)]
    convs, first_3x3 = [], True
    for index, conv_in, conv_out, kernel in plain:
        if kernel == 1:
            convs.append((index, conv_in, conv_out, (1, 1, 1), (1, 1, 1), (0, 0, 0)))
            continue
        s, first_3x3 = (stride if first_3x3 else 1), False
        if is_2plus1d:
            mid = mid_planes(conv_in, conv_out)
            convs += [(f"{index}_s", conv_in, mid, (1, 3, 3), (1, s, s), (0, 1, 1)),
                      (f"{index}_t", mid, conv_out, (3, 1, 1), (s, 1, 1), (1, 0, 0))]
        else:
            convs.append((index, conv_in, conv_out, (3, 3, 3), (s, s, s), (1, 1, 1)))
    return convs


def stages(layers, widen_factor):
    """(stage index, planes, blocks, stride) of layer1..layer4."""
    planes = [scaled(width, widen_factor) for width in INPLANES]
    return [(stage, stage_planes, n_blocks, 1 if stage == 1 else 2)
            for stage, (stage_planes, n_blocks) in enumerate(zip(planes, layers), start=1)]


def _shapes(spec, n_classes, n_input_channels, widen_factor, conv1_t_size, conv1_t_stride, no_max_pool,
            shortcut_type):
    block, is_2plus1d = spec.structure["block"], spec.structure["2plus1d"]
    in_planes = scaled(INPLANES[0], widen_factor)
    shapes = {}
    for suffix, conv_in, conv_out, kernel, _, _ in stem_convs(is_2plus1d, n_input_channels, in_planes,
                                                              conv1_t_size, conv1_t_stride):
        conv(shapes, f"conv{suffix}", conv_out, conv_in, kernel)
        batchnorm(shapes, f"bn{suffix}", conv_out)
    for stage, planes, n_blocks, stride in stages(spec.structure["layers"], widen_factor):
        out_planes = planes * EXPANSION[block]
        for index in range(n_blocks):
            name, block_stride = f"layer{stage}.{index}", stride if index == 0 else 1
            for suffix, conv_in, conv_out, kernel, _, _ in block_convs(block, is_2plus1d, in_planes, planes,
                                                                       block_stride):
                conv(shapes, f"{name}.conv{suffix}", conv_out, conv_in, kernel)
                batchnorm(shapes, f"{name}.bn{suffix}", conv_out)
            # Shortcut 'A' pads channels with zeros: no parameters.
            if shortcut_type == "B" and needs_downsample(in_planes, out_planes, block_stride):
                conv(shapes, f"{name}.downsample.0", out_planes, in_planes, (1, 1, 1))
                batchnorm(shapes, f"{name}.downsample.1", out_planes)
            in_planes = out_planes
    shapes["fc.weight"] = (n_classes, in_planes)
    shapes["fc.bias"] = (n_classes,)
    return shapes


def _width_probes(spec):
    """(parameter, base width) of layers whose output width is exactly scaled(base, widen_factor)."""
    first = "conv1_t" if spec.structure["2plus1d"] else "conv1"
    basic_2plus1d = spec.structure["2plus1d"] and spec.structure["block"] == "basic"
    stage_conv = "conv1_t" if basic_2plus1d else "conv1"
    return [(f"{first}.weight", INPLANES[0])] + [
        (f"layer{stage}.0.{stage_conv}.weight", base) for stage, base in enumerate(INPLANES, start=1)]


def _infer(spec, shapes):
    """Builder kwargs of the shapes; conv1_t_stride and no_max_pool leave no trace in the weights."""
    kwargs = {"widen_factor": widen_factor([(shapes[name][0], base) for name, base in _width_probes(spec)
                                            if name in shapes])}
    stem, temporal_stem = ("conv1_s.weight", "conv1_t.weight") if spec.structure["2plus1d"] else \
        ("conv1.weight", "conv1.weight")
    if "fc.weight" in shapes:
        kwargs["n_classes"] = shapes["fc.weight"][0]
    if stem in shapes:
        kwargs["n_input_channels"] = shapes[stem][1]
    if temporal_stem in shapes:
        kwargs["conv1_t_size"] = shapes[temporal_stem][2]
    kwargs["shortcut_type"] = "B" if any(".downsample." in name for name in shapes) else "A"
    return kwargs


def _identify(shapes):
    if "conv1_s.weight" in shapes:
        prefix, allowed = "r2plus1d_", R2PLUS1D_DEPTHS
    elif "conv1.weight" in shapes:
        prefix, allowed = "resnet", tuple(DEPTHS)
    else:
        return None
    layers = tuple(len({name.split(".")[1] for name in shapes if name.startswith(f"layer{stage}.")})
                   for stage in range(1, 5))
    block = "bottleneck" if "layer1.0.conv3.weight" in shapes else "basic"
    depth = next((d for d, spec in DEPTHS.items() if spec == (block, layers) and d in allowed), None)
    return None if depth is None else f"{prefix}{depth}"


for _depth, (_block, _layers) in DEPTHS.items():
    register(ArchSpec(f"resnet{_depth}", "resnet", "resnet", _depth,
                      {"block": _block, "layers": _layers, "2plus1d": False}, OPTIONS, HEAD, _shapes, _infer,
                      _identify, kenshohara=f"resnet-{_depth}"))
for _depth in R2PLUS1D_DEPTHS:
    _block, _layers = DEPTHS[_depth]
    register(ArchSpec(f"r2plus1d_{_depth}", "resnet", "r2plus1d", _depth,
                      {"block": _block, "layers": _layers, "2plus1d": True}, OPTIONS, HEAD, _shapes, _infer,
                      _identify, kenshohara=f"resnet2p1d-{_depth}"))
