"""I3D ResNet-50, the inflated ResNet-50 of the non-local paper (Wang et al. 2018), as MMAction2 builds it:
open-mmlab/mmaction2 (commit 4d6c9347) mmaction/models/backbones/resnet3d.py (ResNet3d, Bottleneck3d),
heads/i3d_head.py and configs/_base_/models/i3d_r50.py, the tree of its released
i3d_imagenet-pretrained-r50_8xb8-32x2x1-100e_kinetics400-rgb .pth; with `non_local: true`, mmcv's NonLocal3d
(open-mmlab/mmcv commit a8073c74b, mmcv/cnn/bricks/non_local.py) as configured by
i3d_imagenet-pretrained-r50-nl-embedded-gaussian_8xb8-32x2x1-100e_kinetics400-rgb.py, the tree of that release.

MMAction2's network, exactly:
- conv1: (5, 7, 7) conv, stride 2 in time and space, padding (2, 3, 3); BatchNorm; ReLU. Then a (1, 3, 3) max
  pool, stride (2, 2, 2), padding (0, 1, 1); after layer1 `pool2`, a (2, 1, 1) max pool of stride (2, 1, 1).
- bottlenecks of expansion 4 (planes 64, 128, 256, 512; blocks 3, 4, 6, 3), the spatial stride in conv2
  ('pytorch' style), no temporal strides; each conv an mmcv ConvModule (`<conv>.conv`, `<conv>.bn`, ReLU but
  after conv3, whose output is added to the shortcut `downsample` (1x1x1 conv of stride (1, s, s) + BatchNorm)
  before the ReLU). No conv has a bias; every BatchNorm is PyTorch's default (eps 1e-5, momentum 0.1).
- inflated blocks (`INFLATE`, the non-local paper's "every other block"): (1,1,1), (1,0,1,0), (1,0,1,0,1,0),
  (0,1,0); non-local blocks (`NON_LOCAL`, after the block's ReLU): (0,1,0,1) in layer2, (0,1,0,1,0,1) in layer3.
- NonLocal3d (embedded Gaussian, reduction 2, sub_sample, use_scale false): 1x1x1 biased convs `theta.conv`,
  `g.0.conv` and `phi.0.conv` (g and phi followed by a (1, 2, 2) max pool), softmax(theta^T phi) applied to g,
  then `conv_out` (1x1x1 conv without bias + BatchNorm) added to the input.
- head (I3DHead): average over (T, H, W), dropout 0.5, `fc_cls`.
Input: RGB normalised with ImageNet's mean and std on 0-255 (its data_preprocessor), `mean_dataset: imagenet`.

`inflate_mode`, video_classification_pytorch's keyword (zeal-up/video_classification_pytorch
models/ResI3D/i3dResnet.py, commits 032f0ba and 40531b5: 0 no temporal kernel, 1 conv2 3x3x3, 2 conv1 and conv3
3x1x1), chooses which conv of an inflated block gets the temporal kernel, on MMAction2's tree and pattern:
  0  none: every block as a non-inflated one (conv1 1x1x1, conv2 1x3x3), the C2D baseline with I3D's stem;
  1  conv2 3x3x3 (padding 1): MMAction2's inflate_style '3x3x3', video_classification_pytorch's mode 1;
  2  conv1 3x1x1 (padding (1, 0, 0)): MMAction2's default inflate_style '3x1x1' and the paper's, the default,
     which reproduces the releases. video_classification_pytorch's mode 2 also inflates conv3 to 3x1x1,
     which neither the paper nor any released file does: not followed.
(Its README swaps the two, "1: 3x1x1, 2: 3x3x3"; its code, followed here, builds them as above.)
Which blocks are inflated is MMAction2's pattern in every mode (video_classification_pytorch alternates across
stages at 032f0ba, per stage at 40531b5), and the stem, pools and padding are MMAction2's (video_classification_
pytorch's Unit3D pads TF-style, and its pool2 follows layer2): its ResI3D has no released weights, MMAction2 has.
A clip needs at least 5 frames (pool2 meets 2 time steps), and non-local blocks at least 2 x 2 positions in
layer3 (a 32 x 32 clip has them).
"""
from core.archs import WIDEN_FACTOR, ArchSpec, Option, register
from core.archs._shapes import batchnorm, conv, resnet3d_kwargs, scaled
from core.archs.i3d import OPTIONS as I3D_OPTIONS

LAYERS = (3, 4, 6, 3)
PLANES = (64, 128, 256, 512)
EXPANSION = 4
STEM = 64
# MMAction2's i3d_r50.py `inflate` and the NL configs' `non_local`: one flag per block.
INFLATE = ((1, 1, 1), (1, 0, 1, 0), (1, 0, 1, 0, 1, 0), (0, 1, 0))
NON_LOCAL = ((0, 0, 0), (0, 1, 0, 1), (0, 1, 0, 1, 0, 1), (0, 0, 0))
# (kernel, stride, padding)
CONV1 = ((5, 7, 7), (2, 2, 2), (2, 3, 3))
POOL1 = ((1, 3, 3), (2, 2, 2), (0, 1, 1))
POOL2 = ((2, 1, 1), (2, 1, 1), (0, 0, 0))
NON_LOCAL_POOL = (1, 2, 2)  # kernel = stride, no padding
INFLATE_MODES = (0, 1, 2)

OPTIONS = {
    "widen_factor": WIDEN_FACTOR,
    "inflate_mode": Option("inflate_mode", 2, "I3D-ResNet's temporal kernels in the inflated blocks: 0 none, 1 conv2 "
                           "3x3x3, 2 conv1 3x1x1 (MMAction2's I3D-R50)", INFLATE_MODES),
    "non_local": Option("non_local", False, "embedded-Gaussian non-local blocks in every other block of layer2 and "
                        "layer3 (MMAction2's I3D-R50-NL)"),
    "dropout": I3D_OPTIONS["dropout"],
}
HEAD = ("fc_cls.weight", "fc_cls.bias")


def block_convs(inflate_mode, inflated, in_planes, planes, stride):
    """A bottleneck's ConvModules: (name, in, out, kernel, stride, padding); ReLU after each but conv3."""
    conv1, conv2 = ((1, 1, 1), (0, 0, 0)), ((1, 3, 3), (0, 1, 1))
    if inflated and inflate_mode == 1:
        conv2 = ((3, 3, 3), (1, 1, 1))
    elif inflated and inflate_mode == 2:
        conv1 = ((3, 1, 1), (1, 0, 0))
    return [("conv1", in_planes, planes, conv1[0], (1, 1, 1), conv1[1]),
            ("conv2", planes, planes, conv2[0], (1, stride, stride), conv2[1]),
            ("conv3", planes, planes * EXPANSION, (1, 1, 1), (1, 1, 1), (0, 0, 0))]


def stages(widen_factor, inflate_mode, non_local):
    """[(stage, [(convs, downsample, non-local channels)])]: downsample is (in, out, spatial stride) or None,
    the non-local channels the block's output width or None."""
    in_planes, layers = scaled(STEM, widen_factor), []
    for stage, (n_blocks, base) in enumerate(zip(LAYERS, PLANES), start=1):
        planes, stride = scaled(base, widen_factor), 1 if stage == 1 else 2
        out_planes, blocks = planes * EXPANSION, []
        for index in range(n_blocks):
            block_stride = stride if index == 0 else 1
            downsample = (in_planes, out_planes, block_stride) if index == 0 else None
            blocks.append((block_convs(inflate_mode, INFLATE[stage - 1][index], in_planes, planes, block_stride),
                           downsample, out_planes if non_local and NON_LOCAL[stage - 1][index] else None))
            in_planes = out_planes
        layers.append((stage, blocks))
    return layers


def features(widen_factor):
    """Channels of layer4's output, the head's input."""
    return scaled(PLANES[-1], widen_factor) * EXPANSION


def non_local_convs(channels):
    """NonLocal3d's biased 1x1x1 projections (name, in, out) and conv_out's (in, out); reduction 2."""
    inter = max(channels // 2, 1)
    return [("theta", channels, inter), ("phi.0", channels, inter), ("g.0", channels, inter)], (inter, channels)


def _shapes(spec, n_classes, n_input_channels, widen_factor, inflate_mode, non_local, dropout):
    if inflate_mode not in INFLATE_MODES:
        raise ValueError(f"{spec.name}: inflate_mode must be 0, 1 or 2, not {inflate_mode!r}")
    shapes = {}
    stem = scaled(STEM, widen_factor)
    conv(shapes, "conv1.conv", stem, n_input_channels, CONV1[0])
    batchnorm(shapes, "conv1.bn", stem)
    for stage, blocks in stages(widen_factor, inflate_mode, non_local):
        for index, (convs, downsample, non_local_channels) in enumerate(blocks):
            name = f"layer{stage}.{index}"
            for conv_name, conv_in, conv_out, kernel, _, _ in convs:
                conv(shapes, f"{name}.{conv_name}.conv", conv_out, conv_in, kernel)
                batchnorm(shapes, f"{name}.{conv_name}.bn", conv_out)
            if downsample:
                conv(shapes, f"{name}.downsample.conv", downsample[1], downsample[0], (1, 1, 1))
                batchnorm(shapes, f"{name}.downsample.bn", downsample[1])
            if non_local_channels:
                projections, (out_in, out_out) = non_local_convs(non_local_channels)
                for projection, conv_in, conv_out in projections:
                    conv(shapes, f"{name}.non_local_block.{projection}.conv", conv_out, conv_in, (1, 1, 1))
                    shapes[f"{name}.non_local_block.{projection}.conv.bias"] = (conv_out,)
                conv(shapes, f"{name}.non_local_block.conv_out.conv", out_out, out_in, (1, 1, 1))
                batchnorm(shapes, f"{name}.non_local_block.conv_out.bn", out_out)
    shapes["fc_cls.weight"] = (n_classes, features(widen_factor))
    shapes["fc_cls.bias"] = (n_classes,)
    return shapes


def _infer(spec, shapes):
    """Builder kwargs of the shapes; dropout leaves no trace in the weights."""
    kwargs = resnet3d_kwargs(shapes, STEM, PLANES)
    conv1, conv2 = shapes.get("layer1.0.conv1.conv.weight", ()), shapes.get("layer1.0.conv2.conv.weight", ())
    kwargs["inflate_mode"] = 2 if conv1[2:3] == (3,) else 1 if conv2[2:3] == (3,) else 0
    kwargs["non_local"] = any(".non_local_block." in name for name in shapes)
    return kwargs


def _identify(shapes):
    """MMAction2's ResNet3d-50 names with full (not channel-separated) 3x3 convs: layer1.0.conv2 takes all of
    its input channels."""
    conv2 = shapes.get("layer1.0.conv2.conv.weight")
    if "conv1.conv.weight" not in shapes or conv2 is None or conv2[1] != conv2[0]:
        return None
    layers = tuple(len({name.split(".")[1] for name in shapes if name.startswith(f"layer{stage}.")})
                   for stage in range(1, 5))
    return "i3d_resnet50" if layers == LAYERS else None


register(ArchSpec("i3d_resnet50", "i3d_resnet", "i3d_resnet", 50, {"layers": LAYERS}, OPTIONS, HEAD, _shapes,
                  _infer, _identify, normalisation="imagenet"))
