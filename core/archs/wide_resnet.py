"""Wide ResNet-50, as kenshohara/3D-ResNets-PyTorch models/wide_resnet.py, both trees he published:

- his CVPR2018 branch (d9847ea), the tree of the released `wideresnet-50-kinetics.pth` (k = 2): conv1 and bn1
  with 64 channels;
- his 2020 master (wide_resnet.py on resnet.ResNet with block_inplanes [64k, 128k, 256k, 512k]): conv1 and
  bn1 with 64 x k channels (`wide_stem`).

Otherwise the same: stages of 64k, 128k, 256k, 512k planes, bottlenecks of expansion 2 (conv1/bn1, conv2/bn2,
conv3/bn3, downsample.0/.1), fc. The tree is ResNeXt's with ungrouped 3x3x3 convs (core/archs/resnext.py),
built by the same model files. Files from either tree are told apart by conv1's width (`_infer`).
"""
from core.archs import ArchSpec, Option, register
from core.archs import resnext
from core.archs._shapes import scaled, widen_factor

DEPTHS = {50: (3, 4, 6, 3)}  # the one depth his model.py offers (CVPR2018: assert model_depth in [50])
PLANES = (64, 128, 256, 512)
STEM = 64

OPTIONS = {**{name: option for name, option in resnext.OPTIONS.items() if name != "cardinality"},
           "k": Option("wide_resnet_k", 2, "Wide ResNet width multiplier k (an integer)"),
           "wide_stem": Option("wide_resnet_wide_stem", False,
                               "conv1 with 64 x k channels as his 2020 wide_resnet.py (false: 64, his 2017 release "
                               "wideresnet-50-kinetics.pth)")}


def layout(spec, widen_factor, k, wide_stem):
    stem = scaled(STEM * k if wide_stem else STEM, widen_factor)
    return (stem,) + resnext.bottleneck_layout(spec.structure["layers"], stem,
                                               [scaled(p * k, widen_factor) for p in PLANES], lambda p: p, 1)


def _shapes(spec, n_classes, n_input_channels, widen_factor, k, wide_stem, conv1_t_size, conv1_t_stride,
            no_max_pool, shortcut_type):
    return resnext.bottleneck_shapes(*layout(spec, widen_factor, k, wide_stem), n_classes, n_input_channels,
                                     conv1_t_size, shortcut_type)


def _infer(spec, shapes):
    """The stem is 64 x k wide (2020) where it is as wide as layer1's planes and k > 1; k and widen_factor
    only show as their product there, read as k when it is a whole number (his k is an int)."""
    kwargs = resnext.stem_kwargs(shapes)
    stem = shapes.get("conv1.weight", (STEM,))[0]
    planes = [shapes[f"layer{stage}.0.conv1.weight"][0] for stage in range(1, 5)
              if f"layer{stage}.0.conv1.weight" in shapes]
    if not planes:
        return kwargs
    if stem == planes[0] and planes[0] % STEM == 0 and planes[0] // STEM > 1:
        kwargs.update(wide_stem=True, k=planes[0] // STEM, widen_factor=1.0)
        return kwargs
    if stem == planes[0] and planes[0] != STEM:  # a narrowed wide stem: k * widen_factor = planes / 64
        kwargs.update(wide_stem=True, k=OPTIONS["k"].default)
    else:
        kwargs.update(wide_stem=False, k=max(1, round(planes[0] / stem)))
    kwargs["widen_factor"] = widen_factor([(p, base * kwargs["k"]) for p, base in zip(planes, PLANES)] +
                                          ([] if kwargs["wide_stem"] else [(stem, STEM)]))
    return kwargs


def _identify(shapes):
    conv1, conv3 = shapes.get("layer1.0.conv1.weight"), shapes.get("layer1.0.conv3.weight")
    if "conv1.weight" not in shapes or not conv3 or resnext.grouped(shapes) or conv3[0] != 2 * conv1[0]:
        return None
    depth = next((d for d, layers in DEPTHS.items() if layers == resnext.block_counts(shapes)), None)
    return None if depth is None else f"wideresnet{depth}"


for _depth, _layers in DEPTHS.items():
    register(ArchSpec(f"wideresnet{_depth}", "wide_resnet", "wideresnet", _depth, {"layers": _layers}, OPTIONS,
                      resnext.HEAD, _shapes, _infer, _identify, kenshohara=f"wideresnet-{_depth}"))
