"""Pre-activation 3D ResNets, as kenshohara/3D-ResNets-PyTorch models/pre_act_resnet.py of his CVPR2018 branch
(d9847ea), the tree of the released `preresnet-200-kinetics.pth`.

Stem conv1-bn1-relu-maxpool as his ResNet; blocks BN-ReLU-conv (bn1 before conv1, so bn1 has the block's input
width), the shortcut (downsample.0/.1 on the block's input, or shortcut A's zero padding) added after the
last conv with no ReLU after it, and no BatchNorm or ReLU after layer4: global average pooling, fc. His 2020
master keeps these blocks and names but its ResNet calls them with `in_planes=`, which they do not take, so
no checkpoint comes from it; depth 10 is its generate_model's. The 2020 options that the CVPR2018 code fixed
(n_input_channels 3, conv1 7 x 7 x 7 with temporal stride 1, max pooling) are builder keywords here, with
those values as defaults.
"""
from core.archs import ArchSpec, register
from core.archs import resnet
from core.archs._shapes import batchnorm, conv, widen_factor

DEPTHS = resnet.DEPTHS  # 10..200: the same blocks per stage as his ResNets
OPTIONS = resnet.OPTIONS
HEAD = resnet.HEAD


def block_convs(block, in_planes, planes, stride):
    """A block's (index, in, out, kernel, stride, padding); BatchNorm `bn<index>` of width `in` and a ReLU
    come before each conv."""
    if block == "bottleneck":
        return [("1", in_planes, planes, (1, 1, 1), (1, 1, 1), (0, 0, 0)),
                ("2", planes, planes, (3, 3, 3), (stride,) * 3, (1, 1, 1)),
                ("3", planes, planes * resnet.EXPANSION[block], (1, 1, 1), (1, 1, 1), (0, 0, 0))]
    return [("1", in_planes, planes, (3, 3, 3), (stride,) * 3, (1, 1, 1)),
            ("2", planes, planes, (3, 3, 3), (1, 1, 1), (1, 1, 1))]


def _shapes(spec, n_classes, n_input_channels, widen_factor, conv1_t_size, conv1_t_stride, no_max_pool,
            shortcut_type):
    block = spec.structure["block"]
    in_planes = resnet.scaled(resnet.INPLANES[0], widen_factor)
    shapes = {}
    conv(shapes, "conv1", in_planes, n_input_channels, (conv1_t_size, 7, 7))
    batchnorm(shapes, "bn1", in_planes)
    for stage, planes, n_blocks, stride in resnet.stages(spec.structure["layers"], widen_factor):
        out_planes = planes * resnet.EXPANSION[block]
        for index in range(n_blocks):
            name, block_stride = f"layer{stage}.{index}", stride if index == 0 else 1
            for suffix, conv_in, conv_out, kernel, _, _ in block_convs(block, in_planes, planes, block_stride):
                batchnorm(shapes, f"{name}.bn{suffix}", conv_in)
                conv(shapes, f"{name}.conv{suffix}", conv_out, conv_in, kernel)
            if shortcut_type == "B" and resnet.needs_downsample(in_planes, out_planes, block_stride):
                conv(shapes, f"{name}.downsample.0", out_planes, in_planes, (1, 1, 1))
                batchnorm(shapes, f"{name}.downsample.1", out_planes)
            in_planes = out_planes
    shapes["fc.weight"] = (n_classes, in_planes)
    shapes["fc.bias"] = (n_classes,)
    return shapes


def _infer(spec, shapes):
    kwargs = {"widen_factor": widen_factor([(shapes[name][0], base) for name, base in
                                            [("conv1.weight", resnet.INPLANES[0])] +
                                            [(f"layer{stage}.0.conv1.weight", base)
                                             for stage, base in enumerate(resnet.INPLANES, start=1)]
                                            if name in shapes])}
    if "fc.weight" in shapes:
        kwargs["n_classes"] = shapes["fc.weight"][0]
    if "conv1.weight" in shapes:
        kwargs["n_input_channels"], kwargs["conv1_t_size"] = shapes["conv1.weight"][1], shapes["conv1.weight"][2]
    kwargs["shortcut_type"] = "B" if any(".downsample." in name for name in shapes) else "A"
    return kwargs


def _identify(shapes):
    """Pre-activation: a stage's first bn1 normalises the block's input, not conv1's output."""
    bn, conv1 = shapes.get("layer2.0.bn1.weight"), shapes.get("layer2.0.conv1.weight")
    if "conv1.weight" not in shapes or not bn or not conv1 or bn[0] != conv1[1] or bn[0] == conv1[0]:
        return None
    block = "bottleneck" if "layer1.0.conv3.weight" in shapes else "basic"
    layers = tuple(len({name.split(".")[1] for name in shapes if name.startswith(f"layer{stage}.")})
                   for stage in range(1, 5))
    depth = next((d for d, spec in DEPTHS.items() if spec == (block, layers)), None)
    return None if depth is None else f"preresnet{depth}"


for _depth, (_block, _layers) in DEPTHS.items():
    register(ArchSpec(f"preresnet{_depth}", "preresnet", "preresnet", _depth, {"block": _block, "layers": _layers},
                      OPTIONS, HEAD, _shapes, _infer, _identify, kenshohara=f"preresnet-{_depth}"))
