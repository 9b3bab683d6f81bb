"""TSN (temporal segment networks), as yjxiong/tsn-pytorch models.py (commit 2f0468e), the code behind his
`.pth.tar` checkpoints: {'epoch', 'arch', 'state_dict', 'best_prec1'}, keys `module.base_model.*` and
`module.new_fc.*` (main.py saves the DataParallel model's state_dict).

A 2D backbone runs on each of the clip's T frames (one per segment: core.temporal.TemporalSegments samples them
as his dataset.py does); its pooled features go through dropout (his `base_model.fc`, replaced by nn.Dropout, so
no parameters; config `dropout`, default 0.5 as his opts.py, his README trains with 0.8) and `new_fc` (a Linear
initialised N(0, 0.001), bias 0); the per-frame logits are averaged over the frames ('avg' consensus after the
fc, before any softmax: his forward with before_softmax=True). Our clips are (N, C, T, H, W) with
T = num_segments frames of C = n_input_channels channels each.

Backbones:
- `tsn_resnet50`: torchvision's resnet50 (torchvision/models/resnet.py, read at commit 054e54c): conv1 7x7
  stride 2 padding 3 without bias, bn1, ReLU, max pool 3 stride 2 padding 1 (floor), bottleneck stages of 3, 4,
  6, 3 blocks with the stride on conv2 (3x3), downsample.0 (1x1 conv, stride) + downsample.1 (BatchNorm) on each
  stage's first block, BatchNorm eps 1e-5 momentum 0.1, average pooling over the whole map (torchvision's
  AvgPool2d(7) at 224).
  Input: RGB in [0, 1] with ImageNet's mean / std (his input_mean / input_std).
- `tsn_bninception`: BN-Inception of yjxiong/tensorflow-model-zoo.torch (the tsn-pytorch branch, commit 9788c67,
  his submodule): bninception/bn_inception.yaml read by pytorch_load.py and layer_factory.py. Every conv has a
  bias (conv_bias=True) and is followed by `<conv>_bn` (BatchNorm2d, eps 1e-5, momentum 0.1) and a ReLU; every
  pooling uses ceil_mode=True (Caffe's rounding), average pools count the padding; the names are the yaml's ids
  (`conv1_7x7_s2`, `conv1_7x7_s2_bn`, `inception_3a_1x1`, `inception_3a_double_3x3_reduce_bn`, ...). Its global
  pool is AvgPool2d(7, stride 1, ceil_mode) on the 7 x 7 map of a 224 input; here the average over the whole
  map, the same at 224 and defined at every size. His stride-2 blocks (inception_3c, 4e) concatenate a
  padded conv with an unpadded ceil-mode pool: maps of odd size there do not fit, in his code as here (sizes that
  are multiples of 32 work; 112 does not). Input: 0..255 BGR minus [104, 117, 128] (std 1; main.py's
  Stack(roll=True) and ToTorchFormatTensor(div=False)): mean_dataset 'bninception' with `bgr` on.

Input channels: his RGB nets take 3 per frame. His Flow nets stack new_length = 5 flow frames (x, y) per
segment into a 10-channel conv1 (_construct_flow_model); such a file is read (n_input_channels 10 inferred from
its conv1), but our data pipeline feeds 2-channel flow frames (modality flow: one flow frame per segment,
new_length 1), his RGBDiff not at all. His partialBN (every BatchNorm but the first frozen in training) is
config `frozen_bn: partial` (core.engine), a training option. Not reproduced: his per-group lr / weight-decay
multipliers and gradient clipping, his 10-crop test and 256-to-224 scaling (core.spatial's evaluation scales to
sample_size and crops the centre); `resnet_widen_factor` scales every width (his nets are full width) so that
tests can build narrow ones.
"""
from core.archs import WIDEN_FACTOR, ArchSpec, register
from core.archs._shapes import batchnorm, conv, scaled, widen_factor
from core.archs.i3d import OPTIONS as I3D_OPTIONS
from core.archs.resnet import DEPTHS, EXPANSION, INPLANES, stages

RESNET_LAYERS = DEPTHS[50][1]
BN_EPS = 1e-5
BN_MOMENTUM = 0.1  # PyTorch meaning
NEW_FC_STD = 0.001

# BN-Inception after its stem (conv1_7x7_s2, pool1, conv2_3x3_reduce, conv2_3x3, pool2): each block
# (name, 1x1, 3x3_reduce, 3x3, double_3x3_reduce, double_3x3 (both), pool, pool_proj). pool 'ave' / 'max': 3x3
# stride 1 padding 1 then the 1x1 pool_proj; 'max_s2': 3x3 stride 2 without padding, concatenated as it is, in a
# block without 1x1 branch whose 3x3 and double_3x3_2 take stride 2 (inception_3c, inception_4e).
STEM = (("conv1_7x7_s2", 64, 7, 2, 3), ("pool1_3x3_s2",), ("conv2_3x3_reduce", 64, 1, 1, 0),
        ("conv2_3x3", 192, 3, 1, 1), ("pool2_3x3_s2",))
BLOCKS = (
    ("inception_3a", 64, 64, 64, 64, 96, "ave", 32),
    ("inception_3b", 64, 64, 96, 64, 96, "ave", 64),
    ("inception_3c", None, 128, 160, 64, 96, "max_s2", None),
    ("inception_4a", 224, 64, 96, 96, 128, "ave", 128),
    ("inception_4b", 192, 96, 128, 96, 128, "ave", 128),
    ("inception_4c", 160, 128, 160, 128, 160, "ave", 128),
    ("inception_4d", 96, 128, 192, 160, 192, "ave", 128),
    ("inception_4e", None, 128, 192, 192, 256, "max_s2", None),
    ("inception_5a", 352, 192, 320, 160, 224, "ave", 128),
    ("inception_5b", 352, 192, 320, 192, 224, "max", 128),
)
STEM_POOL = (3, 2, 0)  # pool1 / pool2: max, kernel, stride, padding (ceil_mode)
OPTIONS = {"widen_factor": WIDEN_FACTOR, "dropout": I3D_OPTIONS["dropout"]}
HEAD = ("new_fc.weight", "new_fc.bias")


def inception_branches(block):
    """A BN-Inception block as its forward runs it: (chains, pool, pool_proj). Each chain is the conv names of
    one branch, applied in turn (each conv then `<conv>_bn` and a ReLU), in concatenation order (1x1, 3x3,
    double 3x3); the pool branch ('ave', 'max' or 'max_s2') comes last, through `pool_proj` when it has one
    (None otherwise)."""
    name, b1, _, _, _, _, pool, proj = block
    chains = ((f"{name}_1x1",),) if b1 else ()
    chains += ((f"{name}_3x3_reduce", f"{name}_3x3"),
               (f"{name}_double_3x3_reduce", f"{name}_double_3x3_1", f"{name}_double_3x3_2"))
    return chains, pool, f"{name}_pool_proj" if proj else None


def inception_convs(block, in_channels, widen_factor):
    """A BN-Inception block's convs in order: (name, in, out, kernel, stride, padding), each followed by
    `<name>_bn` and a ReLU; and the block's output channels. The names and order are inception_branches'."""
    _, b1, b3r, b3, d3r, d3, pool, proj = block
    chains, _, proj_name = inception_branches(block)
    w = lambda width: scaled(width, widen_factor)  # noqa: E731
    s = 2 if pool == "max_s2" else 1
    # (in, out, kernel, stride, padding) of each chain's convs.
    shapes = [[(in_channels, w(b1), 1, 1, 0)]] if b1 else []
    shapes += [[(in_channels, w(b3r), 1, 1, 0), (w(b3r), w(b3), 3, s, 1)],
               [(in_channels, w(d3r), 1, 1, 0), (w(d3r), w(d3), 3, 1, 1), (w(d3), w(d3), 3, s, 1)]]
    if [len(chain) for chain in chains] != [len(chain) for chain in shapes]:  # zip(strict=True) needs Python 3.10
        raise ValueError(f"{block[0]}: inception_branches' convs and their shapes disagree")
    convs = [(conv, *shape) for chain, chain_shapes in zip(chains, shapes)
             for conv, shape in zip(chain, chain_shapes)]
    if proj_name:
        convs.append((proj_name, in_channels, w(proj), 1, 1, 0))
    out = (w(b1) if b1 else 0) + w(b3) + w(d3) + (w(proj) if proj else in_channels)
    return convs, out


def bninception_convs(n_input_channels, widen_factor):
    """Every conv of BN-Inception in the yaml's order, (name, in, out, kernel, stride, padding); the final width."""
    convs, channels = [], n_input_channels
    for name, *layer in STEM:
        if layer:
            out, kernel, stride, padding = layer
            convs.append((name, channels, scaled(out, widen_factor), kernel, stride, padding))
            channels = scaled(out, widen_factor)
    for block in BLOCKS:
        block_convs, channels = inception_convs(block, channels, widen_factor)
        convs += block_convs
    return convs, channels


def _bninception_shapes(spec, n_classes, n_input_channels, widen_factor, dropout):
    shapes = {}
    convs, channels = bninception_convs(n_input_channels, widen_factor)
    for name, conv_in, conv_out, kernel, _, _ in convs:
        conv(shapes, f"base_model.{name}", conv_out, conv_in, (kernel, kernel))
        shapes[f"base_model.{name}.bias"] = (conv_out,)
        batchnorm(shapes, f"base_model.{name}_bn", conv_out)
    return _head(shapes, n_classes, channels)


def resnet_block_convs(in_planes, planes, stride):
    """torchvision's Bottleneck: (suffix, in, out, kernel, stride, padding) of conv1..conv3."""
    return [("1", in_planes, planes, 1, 1, 0), ("2", planes, planes, 3, stride, 1),
            ("3", planes, planes * EXPANSION["bottleneck"], 1, 1, 0)]


def _resnet_shapes(spec, n_classes, n_input_channels, widen_factor, dropout):
    shapes = {}
    in_planes = scaled(INPLANES[0], widen_factor)
    conv(shapes, "base_model.conv1", in_planes, n_input_channels, (7, 7))
    batchnorm(shapes, "base_model.bn1", in_planes)
    for stage, planes, n_blocks, stride in stages(RESNET_LAYERS, widen_factor):
        for index in range(n_blocks):
            name = f"base_model.layer{stage}.{index}"
            for suffix, conv_in, conv_out, kernel, _, _ in resnet_block_convs(in_planes, planes,
                                                                              stride if index == 0 else 1):
                conv(shapes, f"{name}.conv{suffix}", conv_out, conv_in, (kernel, kernel))
                batchnorm(shapes, f"{name}.bn{suffix}", conv_out)
            if index == 0:
                conv(shapes, f"{name}.downsample.0", planes * EXPANSION["bottleneck"], in_planes, (1, 1))
                batchnorm(shapes, f"{name}.downsample.1", planes * EXPANSION["bottleneck"])
            in_planes = planes * EXPANSION["bottleneck"]
    return _head(shapes, n_classes, in_planes)


def _head(shapes, n_classes, features):
    shapes["new_fc.weight"] = (n_classes, features)
    shapes["new_fc.bias"] = (n_classes,)
    return shapes


def _infer(spec, shapes):
    """Builder kwargs of the shapes (dropout leaves no trace in the weights)."""
    if spec.name == "tsn_resnet50":
        stem = "base_model.conv1.weight"
        probes = [(stem, INPLANES[0])] + [(f"base_model.layer{stage}.0.conv1.weight", base)
                                          for stage, base in enumerate(INPLANES, start=1)]
    else:
        stem = "base_model.conv1_7x7_s2.weight"
        probes = [(f"base_model.{name}.weight", out) for name, _, out, _, _, _ in bninception_convs(3, 1.0)[0]]
    kwargs = {"widen_factor": widen_factor([(shapes[name][0], base) for name, base in probes if name in shapes])}
    if HEAD[0] in shapes:
        kwargs["n_classes"] = shapes[HEAD[0]][0]
    if stem in shapes:
        kwargs["n_input_channels"] = shapes[stem][1]
    return kwargs


def _identify(shapes):
    if len(shapes.get("base_model.conv1_7x7_s2.weight", ())) == 4:
        return "tsn_bninception"
    if len(shapes.get("base_model.conv1.weight", ())) == 4:
        return "tsn_resnet50"
    return None


register(ArchSpec("tsn_resnet50", "tsn", "tsn_resnet50", None, {"backbone": "resnet", "layers": RESNET_LAYERS}, OPTIONS,
                  HEAD, _resnet_shapes, _infer, _identify, normalisation="imagenet", segments=True))
register(ArchSpec("tsn_bninception", "tsn", "tsn_bninception", None, {"backbone": "bninception"}, OPTIONS, HEAD,
                  _bninception_shapes, _infer, _identify, normalisation="bninception", bgr=True, segments=True))
