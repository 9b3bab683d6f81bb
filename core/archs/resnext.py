"""ResNeXt, as kenshohara/3D-ResNets-PyTorch models/resnext.py of his CVPR2018 branch (d9847ea).

His CVPR2018 tree is the one of the released `resnext-101-kinetics.pth` and the fine-tuned
`resnext-101(-64f)-kinetics-ucf101_split1.pth` (94.5% UCF-101): conv1 with 64 channels, stages of 128, 256,
512, 1024 planes, bottlenecks of expansion 2 whose 3x3x3 conv has `cardinality` groups and
cardinality * (planes // 32) channels. His 2020 master (models/resnext.py on resnet.ResNet) cannot have
written a checkpoint: ResNeXt passes n_classes positionally into ResNet's widen_factor and its block's
`inplanes` does not take ResNet's `in_planes=` keyword. The 2020 options that the CVPR2018 code fixed
(n_input_channels 3, conv1 7 x 7 x 7 with temporal stride 1, max pooling) are builder keywords here, with
those values as defaults; depth 200 is his 2020 generate_model's. The final pooling is global (his
CVPR2018 AvgPool3d sized from sample_size / sample_duration is global at the sizes he trains at). fc takes
the features' width, 2 x layer4's planes: his `cardinality * 32 * 2` is that number at full width and
cardinality 32 (his releases); at another cardinality his model fails at its first forward.

Module names and forward are those of a post-activation bottleneck ResNet (core/archs/resnet.py's tree):
conv1-bn1-relu-maxpool, layer1..4 of blocks conv1/bn1, conv2/bn2, conv3/bn3, downsample.0/.1, fc.
Wide ResNet (core/archs/wide_resnet.py) is the same tree with ungrouped bottlenecks; both are listed by
`bottleneck_layout` below.
"""
from core.archs import WIDEN_FACTOR, ArchSpec, Option, register
from core.archs import resnet
from core.archs._shapes import batchnorm, conv, scaled, widen_factor

DEPTHS = {50: (3, 4, 6, 3), 101: (3, 4, 23, 3), 152: (3, 8, 36, 3), 200: (3, 24, 36, 3)}
PLANES = (128, 256, 512, 1024)
STEM = 64
EXPANSION = 2

CARDINALITY = Option("resnext_cardinality", 32, "ResNeXt cardinality: groups of the bottlenecks' 3x3x3 convs")
OPTIONS = {"widen_factor": WIDEN_FACTOR, "cardinality": CARDINALITY,
           **{name: resnet.OPTIONS[name] for name in ("conv1_t_size", "conv1_t_stride", "no_max_pool",
                                                       "shortcut_type")}}
HEAD = resnet.HEAD


def bottleneck_layout(layers, stem_width, stage_planes, mid_width, groups):
    """The blocks of a ResNeXt / Wide ResNet: [(name, in, mid, out, groups, stride)], the last out width.

    Each block is conv1 1x1x1 in -> mid, conv2 3x3x3 mid -> mid (`groups`, the block's stride), conv3 1x1x1
    mid -> out = planes * 2, each with its BatchNorm; the first block of a stage downsamples."""
    blocks, in_planes = [], stem_width
    for stage, (planes, n_blocks) in enumerate(zip(stage_planes, layers), start=1):
        for index in range(n_blocks):
            stride = 2 if stage > 1 and index == 0 else 1
            out = planes * EXPANSION
            blocks.append((f"layer{stage}.{index}", in_planes, mid_width(planes), out, groups, stride))
            in_planes = out
    return blocks, in_planes


def layout(spec, widen_factor, cardinality):
    """(stem width, blocks, features width) of a ResNeXt: planes scaled by widen_factor, mid widths
    cardinality * (planes // 32) as his `cardinality * int(planes / 32)`."""
    if scaled(PLANES[0], widen_factor) < 32:
        raise ValueError(f"{spec.name}: widen_factor {widen_factor} leaves layer1 {scaled(PLANES[0], widen_factor)} "
                         "planes, fewer than the 32 per group its grouped convs need (widen_factor >= 0.25)")
    return (scaled(STEM, widen_factor),) + bottleneck_layout(
        spec.structure["layers"], scaled(STEM, widen_factor), [scaled(p, widen_factor) for p in PLANES],
        lambda planes: cardinality * (planes // 32), cardinality)


def bottleneck_shapes(stem, blocks, features, n_classes, n_input_channels, conv1_t_size, shortcut_type):
    shapes = {}
    conv(shapes, "conv1", stem, n_input_channels, (conv1_t_size, 7, 7))
    batchnorm(shapes, "bn1", stem)
    for name, in_planes, mid, out, groups, stride in blocks:
        conv(shapes, f"{name}.conv1", mid, in_planes, (1, 1, 1))
        batchnorm(shapes, f"{name}.bn1", mid)
        conv(shapes, f"{name}.conv2", mid, mid // groups, (3, 3, 3))
        batchnorm(shapes, f"{name}.bn2", mid)
        conv(shapes, f"{name}.conv3", out, mid, (1, 1, 1))
        batchnorm(shapes, f"{name}.bn3", out)
        if shortcut_type == "B" and resnet.needs_downsample(in_planes, out, stride):
            conv(shapes, f"{name}.downsample.0", out, in_planes, (1, 1, 1))
            batchnorm(shapes, f"{name}.downsample.1", out)
    shapes["fc.weight"] = (n_classes, features)
    shapes["fc.bias"] = (n_classes,)
    return shapes


def _shapes(spec, n_classes, n_input_channels, widen_factor, cardinality, conv1_t_size, conv1_t_stride,
            no_max_pool, shortcut_type):
    return bottleneck_shapes(*layout(spec, widen_factor, cardinality), n_classes, n_input_channels,
                             conv1_t_size, shortcut_type)


def stem_kwargs(shapes):
    """n_classes, n_input_channels, conv1_t_size and shortcut_type of a bottleneck ResNet's shapes."""
    kwargs = {"shortcut_type": "B" if any(".downsample." in name for name in shapes) else "A"}
    if "fc.weight" in shapes:
        kwargs["n_classes"] = shapes["fc.weight"][0]
    if "conv1.weight" in shapes:
        kwargs["n_input_channels"], kwargs["conv1_t_size"] = shapes["conv1.weight"][1], shapes["conv1.weight"][2]
    return kwargs


def _infer(spec, shapes):
    """widen_factor from the stem and the stages' output widths, cardinality from conv2's groups."""
    probes = [("conv1.weight", 1, STEM)] + [(f"layer{stage}.0.conv3.weight", EXPANSION, base)
                                            for stage, base in enumerate(PLANES, start=1)]
    kwargs = {"widen_factor": widen_factor([(shapes[name][0] // factor, base) for name, factor, base in probes
                                            if name in shapes]), **stem_kwargs(shapes)}
    conv2 = shapes.get("layer1.0.conv2.weight")
    if conv2:
        kwargs["cardinality"] = conv2[0] // conv2[1]
    return kwargs


def block_counts(shapes):
    return tuple(len({name.split(".")[1] for name in shapes if name.startswith(f"layer{stage}.")})
                 for stage in range(1, 5))


def grouped(shapes):
    conv2 = shapes.get("layer1.0.conv2.weight")
    return conv2 is not None and conv2[1] != conv2[0]


def _identify(shapes):
    if "conv1.weight" not in shapes or "layer1.0.conv3.weight" not in shapes or not grouped(shapes):
        return None
    depth = next((d for d, layers in DEPTHS.items() if layers == block_counts(shapes)), None)
    return None if depth is None else f"resnext{depth}"


for _depth, _layers in DEPTHS.items():
    register(ArchSpec(f"resnext{_depth}", "resnext", "resnext", _depth, {"layers": _layers}, OPTIONS, HEAD,
                      _shapes, _infer, _identify, kenshohara=f"resnext-{_depth}"))
