"""Architecture specs shared by every backend.

Each backend's `models/` builds these with its own layers; the numbers and
the module tree (hence the parameter names) live here once. Trees follow the
community checkpoints: kenshohara's 3D ResNets / R(2+1)D and piergiaj's I3D.
"""

# depth -> (block, blocks per stage); kenshohara's generate_model().
RESNET_DEPTHS = {
    10: ("basic", (1, 1, 1, 1)),
    18: ("basic", (2, 2, 2, 2)),
    34: ("basic", (3, 4, 6, 3)),
    50: ("bottleneck", (3, 4, 6, 3)),
    101: ("bottleneck", (3, 4, 23, 3)),
    152: ("bottleneck", (3, 8, 36, 3)),
    200: ("bottleneck", (3, 24, 36, 3)),
}
R2PLUS1D_DEPTHS = (18, 34, 50)
BLOCK_EXPANSION = {"basic": 1, "bottleneck": 4}
RESNET_INPLANES = (64, 128, 256, 512)

# I3D (piergiaj's InceptionI3d): endpoints in order. A Unit3D is
# (out_channels, kernel, stride); a pool is ("pool", kernel, stride); a
# Mixed block lists its six branch widths [b0, b1a, b1b, b2a, b2b, b3b].
I3D_ENDPOINTS = (
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
I3D_BN_EPS = 1e-3
I3D_BN_MOMENTUM = 0.01  # PyTorch meaning: new = (1 - m) * old + m * batch
I3D_AVG_POOL = (2, 7, 7)  # the reference's final pooling at 224 x 224

ARCHS = tuple(
    [f"resnet{d}" for d in RESNET_DEPTHS]
    + [f"r2plus1d_{d}" for d in R2PLUS1D_DEPTHS]
    + ["i3d"]
)


def scaled(channels, widen_factor):
    """Channel count under a width multiplier (never below 1)."""
    return max(1, int(channels * widen_factor))


def mixed_out_channels(widths):
    """Output channels of an Inception block: b0 + b1b + b2b + b3b."""
    return widths[0] + widths[2] + widths[4] + widths[5]


def r2plus1d_mid_planes(in_planes, planes, t_size=3, s_size=3):
    """kenshohara's R(2+1)D intermediate width: keeps the 3D conv's parameter count."""
    return (in_planes * planes * t_size * s_size * s_size) // (in_planes * s_size * s_size + t_size * planes)


def r2plus1d_stem_mid_planes(in_planes, conv1_t_size):
    # kenshohara's code counts 3 input channels here whatever n_input_channels is.
    return (3 * in_planes * conv1_t_size * 7 * 7) // (3 * 7 * 7 + conv1_t_size * in_planes)


def same_padding(size, kernel, stride):
    """TF 'SAME' padding of one dimension as (before, after), as piergiaj's compute_pad."""
    if size % stride == 0:
        pad = max(kernel - stride, 0)
    else:
        pad = max(kernel - (size % stride), 0)
    return pad // 2, pad - pad // 2


def i3d_avg_pool_kernel(t, h, w):
    """Final pooling of I3D: the reference's (2, 7, 7), shrunk to fit smaller feature maps."""
    return min(I3D_AVG_POOL[0], t), min(I3D_AVG_POOL[1], h), min(I3D_AVG_POOL[2], w)


def arch_name(config):
    """Registry name from kenshohara-style `model` + `model_depth`."""
    if config["model"] == "i3d":
        return "i3d"
    depth = config["model_depth"]
    name = f"resnet{depth}" if config["model"] == "resnet" else f"r2plus1d_{depth}"
    if name not in ARCHS:
        raise ValueError(f"model_depth {depth} is not available for model '{config['model']}' "
                         f"(choose from {', '.join(a for a in ARCHS if a.startswith(config['model']))})")
    return name


# kenshohara saves arch as f"{model}-{depth}" (main.py): resnet-50, resnet2p1d-18.
_KENSHOHARA_FAMILIES = {"resnet": "resnet", "r2plus1d_": "resnet2p1d"}


def kenshohara_arch(arch):
    """'resnet50' -> 'resnet-50', 'r2plus1d_18' -> 'resnet2p1d-18' (his main.py: f'{model}-{depth}')."""
    for prefix, model in _KENSHOHARA_FAMILIES.items():
        if arch.startswith(prefix) and arch[len(prefix):].isdigit():
            return f"{model}-{arch[len(prefix):]}"
    return arch


def arch_from_kenshohara(name, source):
    model, _, depth = name.partition("-")
    for prefix, kenshohara_model in _KENSHOHARA_FAMILIES.items():
        if model == kenshohara_model and f"{prefix}{depth}" in ARCHS:
            return f"{prefix}{depth}"
    if name in ARCHS:
        return name
    known = ", ".join(kenshohara_arch(arch) for arch in ARCHS)
    raise ValueError(f"{source}: arch '{name}' is not supported (known: {known})")


def model_kwargs(config, n_classes=None):
    """Keyword arguments every backend's builder takes, from a config."""
    n_input_channels = 2 if config["modality"] == "flow" else 3
    kwargs = dict(n_classes=n_classes or config["n_classes"], n_input_channels=n_input_channels,
                  widen_factor=config["resnet_widen_factor"])
    if config["model"] == "i3d":
        kwargs["dropout"] = config["dropout"]
    else:
        kwargs.update(conv1_t_size=config["conv1_t_size"], conv1_t_stride=config["conv1_t_stride"],
                      no_max_pool=config["no_max_pool"], shortcut_type=config["resnet_shortcut"])
    return kwargs
