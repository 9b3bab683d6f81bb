"""Channel-separated networks (Tran et al., ICCV 2019), ip-CSN and ir-CSN of depth 50, 101 and 152, as MMAction2
builds them (open-mmlab/mmaction2 commit 4d6c934: mmaction/models/backbones/resnet3d_csn.py ResNet3dCSN and
CSNBottleneck3d on resnet3d.py ResNet3d and Bottleneck3d, heads/i3d_head.py I3DHead, configs/_base_/models/
ircsn_r152.py and configs/recognition/csn/*), the tree of its released CSN checkpoints (IG-65M / Sports-1M
pretrained and Kinetics-400 fine-tuned, its own and those ported from facebookresearch/VMZ).

The tree, MMAction2's names without `backbone.` / `cls_head.` (core/checkpoints/layouts.py `mmaction2`); every
conv is an mmcv ConvModule `<name>.conv` (no bias) + `<name>.bn` (BatchNorm3d, eps 1e-3, momentum 0.1) + ReLU
unless said otherwise:
- conv1: (3, 7, 7), stride (1, 2, 2), padding (1, 3, 3); maxpool (1, 3, 3), stride (1, 2, 2), padding (0, 1, 1);
  no pool2 (the config's with_pool2=False);
- layer1..4 of 64, 128, 256, 512 planes (x 4 out), spatial and temporal strides (1, 2, 2, 2) in the first
  block's 3x3x3 conv (style 'pytorch'); a block is conv1 1x1x1; conv2, a Sequential: 'ip' conv2.0 1x1x1 planes
  -> planes without ReLU then conv2.1, 'ir' conv2.0 alone: the 3x3x3 depthwise conv (groups = planes, padding
  1); conv3 1x1x1 without ReLU; `downsample` (ConvModule 1x1x1 with the block's stride, no ReLU) in the first
  block of each stage; ReLU after the sum;
- head: global average pool, dropout (I3DHead's dropout_ratio 0.5), `fc_cls`.
The released models are trained on RGB normalised with ImageNet's mean / std (the base config:
123.675, 116.28, 103.53 / 58.395, 57.12, 57.375 of 255); VMZ's ported from-scratch files with VMZ's
(mean_dataset `vmz`). MMAction2 fine-tunes the IG-65M ones with norm_eval / bn_frozen (frozen BatchNorms), a
training option, not part of the tree: config `frozen_bn: all` (core.engine). `resnet_widen_factor` scales every
width (a narrow net for tests).
"""
from core.archs import WIDEN_FACTOR, ArchSpec, register
from core.archs.resnet import EXPANSION as RESNET_EXPANSION, INPLANES
from core.archs.i3d import OPTIONS as I3D_OPTIONS
from core.archs._shapes import batchnorm, conv, resnet3d_kwargs, scaled

DEPTHS = {50: (3, 4, 6, 3), 101: (3, 4, 23, 3), 152: (3, 8, 36, 3)}
MODES = ("ip", "ir")
STEM = 64
PLANES = INPLANES  # ResNet3d's base_channels * 2 ** stage
STRIDES = (1, 2, 2, 2)  # spatial and temporal (ResNet3dCSN's temporal_strides, ResNet3d's spatial_strides)
EXPANSION = RESNET_EXPANSION["bottleneck"]
CONV1_KERNEL = (3, 7, 7)
BN_EPS = 1e-3
BN_MOMENTUM = 0.1  # mmcv's BN3d default, PyTorch meaning
MAXPOOL = ((1, 3, 3), (1, 2, 2), (0, 1, 1))  # kernel, stride, padding

OPTIONS = {"widen_factor": WIDEN_FACTOR, "dropout": I3D_OPTIONS["dropout"]}
HEAD = ("fc_cls.weight", "fc_cls.bias")


def stem_conv(n_input_channels, widen_factor):
    """conv1's (in, out, kernel, stride, groups, relu), as block_units lists a block's."""
    return n_input_channels, scaled(STEM, widen_factor), CONV1_KERNEL, (1, 2, 2), 1, True


def block_units(mode, in_planes, planes, stride):
    """A block's ConvModules in order: [(path, in, out, kernel, stride, groups, relu)]; padding is kernel // 2."""
    depthwise = (planes, planes, (3, 3, 3), stride, planes, True)
    conv2 = [("conv2.0", planes, planes, (1, 1, 1), 1, 1, False), ("conv2.1", *depthwise)] if mode == "ip" else \
        [("conv2.0", *depthwise)]
    return [("conv1", in_planes, planes, (1, 1, 1), 1, 1, True), *conv2,
            ("conv3", planes, planes * EXPANSION, (1, 1, 1), 1, 1, False)]


def blocks(spec, widen_factor):
    """[(name, mode's units, downsample (in, out, stride) or None)] of layer1..4, and the features' width."""
    layout, in_planes = [], scaled(STEM, widen_factor)
    for stage, (base, n_blocks, stage_stride) in enumerate(zip(PLANES, spec.structure["layers"], STRIDES), start=1):
        planes = scaled(base, widen_factor)
        for index in range(n_blocks):
            stride = stage_stride if index == 0 else 1
            out = planes * EXPANSION
            # ResNet3d.make_res_layer: a downsample where the spatial stride or the width changes.
            downsample = (in_planes, out, stride) if stride != 1 or in_planes != out else None
            layout.append((f"layer{stage}.{index}", block_units(spec.structure["mode"], in_planes, planes, stride),
                           downsample))
            in_planes = out
    return layout, in_planes


def _conv_module(shapes, name, in_channels, out_channels, kernel, groups=1):
    conv(shapes, f"{name}.conv", out_channels, in_channels // groups, kernel)
    batchnorm(shapes, f"{name}.bn", out_channels)


def _shapes(spec, n_classes, n_input_channels, widen_factor, dropout):
    shapes = {}
    conv_in, conv_out, kernel, _, _, _ = stem_conv(n_input_channels, widen_factor)
    _conv_module(shapes, "conv1", conv_in, conv_out, kernel)
    layout, features = blocks(spec, widen_factor)
    for name, units, downsample in layout:
        for path, unit_in, unit_out, unit_kernel, _, groups, _ in units:
            _conv_module(shapes, f"{name}.{path}", unit_in, unit_out, unit_kernel, groups)
        if downsample:
            _conv_module(shapes, f"{name}.downsample", downsample[0], downsample[1], (1, 1, 1))
    shapes["fc_cls.weight"] = (n_classes, features)
    shapes["fc_cls.bias"] = (n_classes,)
    return shapes


def _infer(spec, shapes):
    return resnet3d_kwargs(shapes, STEM, PLANES)


def _identify(shapes):
    """A CSN block's conv2 is a Sequential (conv2.0); ip's has the depthwise conv second (conv2.1)."""
    if "layer1.0.conv2.0.conv.weight" not in shapes:
        return None
    counts = tuple(len({name.split(".")[1] for name in shapes if name.startswith(f"layer{stage}.")})
                   for stage in range(1, 5))
    depth = next((d for d, layers in DEPTHS.items() if layers == counts), None)
    mode = "ip" if "layer1.0.conv2.1.conv.weight" in shapes else "ir"
    return None if depth is None else f"{mode}_csn_{depth}"


for _mode in MODES:
    for _depth, _layers in DEPTHS.items():
        register(ArchSpec(f"{_mode}_csn_{_depth}", "csn", f"{_mode}_csn", _depth, {"mode": _mode, "layers": _layers},
                          OPTIONS, HEAD, _shapes, _infer, _identify, normalisation="imagenet"))
