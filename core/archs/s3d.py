"""S3D (separable 3D Inception, Xie et al. 2018), as kylemin/S3D model.py (commit ecd3786), the tree of its
released S3D_kinetics400.pt (`base.0.conv_s.weight`, `base.5.branch1.1.conv_t.weight`, `fc.0.bias`).

I3D's Inception-v1 with every 3D conv of kernel k > 1 split into a spatial (1, k, k) conv and a temporal
(k, 1, 1) conv, each followed by BatchNorm and ReLU (SepConv3d: conv_s, bn_s, conv_t, bn_t). Unlike I3D it
pads symmetrically as PyTorch does (convs and max pools with explicit padding; max pools pad with -inf), its
BatchNorms have eps 1e-3 and momentum 0.001 (PyTorch meaning), no conv has a bias but the classifier, and the
head averages (2, H, W) with stride 1, applies the 1x1x1 conv `fc.0` and averages the time steps left.
Its input is RGB in [-1, 1] (main.py: x * 2 / 255 - 1). kylemin's model has no width multiplier; ours
(`resnet_widen_factor`) scales every width, as for I3D, so that tests can build narrow ones.
"""
from core.archs import WIDEN_FACTOR, ArchSpec, register
from core.archs._shapes import batchnorm, conv, scaled, widen_factor
from core.archs.i3d import ENDPOINTS as I3D_ENDPOINTS, mixed_out_channels

# The Inception blocks' branch widths [b0, b1a, b1b, b2a, b2b, b3b] are I3D's (kylemin's Mixed_* classes).
_MIXED = {name: layer[1] for name, layer in I3D_ENDPOINTS if layer[0] == "mixed"}

# `base`, in order (its Sequential index is the position): ("sep", out, kernel, stride, padding) a SepConv3d,
# ("basic", out) a 1x1x1 BasicConv3d, ("pool", kernel, stride, padding) a max pool, ("mixed", widths).
BASE = (
    ("sep", 64, 7, 2, 3),
    ("pool", (1, 3, 3), (1, 2, 2), (0, 1, 1)),
    ("basic", 64),
    ("sep", 192, 3, 1, 1),
    ("pool", (1, 3, 3), (1, 2, 2), (0, 1, 1)),
    ("mixed", _MIXED["Mixed_3b"]),
    ("mixed", _MIXED["Mixed_3c"]),
    ("pool", (3, 3, 3), (2, 2, 2), (1, 1, 1)),
    ("mixed", _MIXED["Mixed_4b"]),
    ("mixed", _MIXED["Mixed_4c"]),
    ("mixed", _MIXED["Mixed_4d"]),
    ("mixed", _MIXED["Mixed_4e"]),
    ("mixed", _MIXED["Mixed_4f"]),
    ("pool", (2, 2, 2), (2, 2, 2), (0, 0, 0)),
    ("mixed", _MIXED["Mixed_5b"]),
    ("mixed", _MIXED["Mixed_5c"]),
)
BN_EPS = 1e-3
BN_MOMENTUM = 0.001  # PyTorch meaning: new = (1 - m) * old + m * batch
BRANCH_POOL = ((3, 3, 3), (1, 1, 1), (1, 1, 1))  # branch3.0: max pool kernel, stride, padding
AVG_POOL_T = 2  # the head's average pool: (2, H, W), stride 1
OPTIONS = {"widen_factor": WIDEN_FACTOR}
HEAD = ("fc.0.weight", "fc.0.bias")


def branches(in_channels, widths):
    """A Mixed block's convs: (branch path, kind, in, out) with kind 'basic' (1x1x1) or 'sep' (3, padding 1);
    branch3.0 is the max pool (BRANCH_POOL)."""
    b0, b1a, b1b, b2a, b2b, b3b = widths
    return [("branch0.0", "basic", in_channels, b0), ("branch1.0", "basic", in_channels, b1a),
            ("branch1.1", "sep", b1a, b1b), ("branch2.0", "basic", in_channels, b2a),
            ("branch2.1", "sep", b2a, b2b), ("branch3.1", "basic", in_channels, b3b)]


def avg_pool_kernel(t, h, w):
    """The head's (2, H, W) average pool, its time shrunk to fit shorter feature maps."""
    return min(AVG_POOL_T, t), h, w


def _unit_shapes(shapes, name, kind, in_channels, out_channels, kernel=3):
    if kind == "basic":
        conv(shapes, f"{name}.conv", out_channels, in_channels, (1, 1, 1))
        batchnorm(shapes, f"{name}.bn", out_channels)
    else:
        conv(shapes, f"{name}.conv_s", out_channels, in_channels, (1, kernel, kernel))
        batchnorm(shapes, f"{name}.bn_s", out_channels)
        conv(shapes, f"{name}.conv_t", out_channels, out_channels, (kernel, 1, 1))
        batchnorm(shapes, f"{name}.bn_t", out_channels)


def _shapes(spec, n_classes, n_input_channels, widen_factor):
    shapes, channels = {}, n_input_channels
    for index, (kind, *rest) in enumerate(BASE):
        if kind in ("sep", "basic"):
            out_channels = scaled(rest[0], widen_factor)
            _unit_shapes(shapes, f"base.{index}", kind, channels, out_channels, *rest[1:2])
            channels = out_channels
        elif kind == "mixed":
            widths = [scaled(w, widen_factor) for w in rest[0]]
            for branch, unit, conv_in, conv_out in branches(channels, widths):
                _unit_shapes(shapes, f"base.{index}.{branch}", unit, conv_in, conv_out)
            channels = mixed_out_channels(widths)
    conv(shapes, "fc.0", n_classes, channels, (1, 1, 1))
    shapes["fc.0.bias"] = (n_classes,)
    return shapes


def _infer(spec, shapes):
    probes = []
    for index, (kind, *rest) in enumerate(BASE):
        if kind == "sep":
            probes.append((f"base.{index}.conv_s.weight", rest[0]))
        elif kind == "basic":
            probes.append((f"base.{index}.conv.weight", rest[0]))
        elif kind == "mixed":
            probes += [(f"base.{index}.{branch}.{'conv' if unit == 'basic' else 'conv_s'}.weight", width)
                       for (branch, unit, _, _), width in zip(branches(0, rest[0]), rest[0])]
    kwargs = {"widen_factor": widen_factor([(shapes[name][0], base) for name, base in probes if name in shapes])}
    if HEAD[0] in shapes:
        kwargs["n_classes"] = shapes[HEAD[0]][0]
    if "base.0.conv_s.weight" in shapes:
        kwargs["n_input_channels"] = shapes["base.0.conv_s.weight"][1]
    return kwargs


def _identify(shapes):
    return "s3d" if "base.0.conv_s.weight" in shapes else None


register(ArchSpec("s3d", "s3d", "s3d", None, {"base": BASE}, OPTIONS, HEAD, _shapes, _infer, _identify,
                  normalisation="i3d"))
