"""3D DenseNet-BC, as kenshohara/3D-ResNets-PyTorch models/densenet.py of his CVPR2018 branch (d9847ea), the
tree of the released `densenet-121-kinetics.pth` and `densenet-201-kinetics.pth`:

features.conv0 (7 x 7 x 7, stride 1 x 2 x 2), norm0, relu, pool0 (max 3, stride 2, padding 1); dense blocks
`features.denseblock<i>.denselayer<j>` of norm.1-relu-conv.1 (1x1x1 to bn_size x growth) and norm.2-relu-conv.2
(3x3x3 to growth), each layer's output concatenated to its input; transitions `features.transition<i>`
(norm-relu-conv 1x1x1 halving the channels, average pooling 2, stride 2) between blocks; features.norm5,
a ReLU, global average pooling, `classifier`. No biases but the classifier's.

His layer names `norm.1`, `conv.1` (CVPR2018) are modules named with a dot, which no framework builds now:
here they are containers `norm` and `conv` with children `1` and `2`, which gives the same parameter names.
His 2020 master renamed them (`features.conv1`, `denselayer1.norm1`) and its generate_model passes
`n_classes` to a DenseNet that takes `num_classes`, so no checkpoint comes from it. The 2020 options that the
CVPR2018 code fixed (n_input_channels 3, conv0 7 x 7 x 7 with temporal stride 1, max pooling) are builder
keywords here, with those values as defaults; norm5 (a BatchNorm2d there, run on 5-D input by the PyTorch
0.3 of 2017) is a BatchNorm3d, the same parameters and numbers; the final pooling is global (his
AvgPool3d sized from sample_size / sample_duration is global at the sizes he trains at).
"""
from core.archs import WIDEN_FACTOR, ArchSpec, register
from core.archs import resnet
from core.archs._shapes import batchnorm, conv, scaled, widen_factor

# depth -> dense layers per block (his densenet121..264); every one has 64 initial features, growth 32.
DEPTHS = {121: (6, 12, 24, 16), 169: (6, 12, 32, 32), 201: (6, 12, 48, 32), 264: (6, 12, 64, 48)}
INIT_FEATURES = 64
GROWTH_RATE = 32
BN_SIZE = 4

OPTIONS = {"widen_factor": WIDEN_FACTOR,
           **{name: resnet.OPTIONS[name] for name in ("conv1_t_size", "conv1_t_stride", "no_max_pool")}}
HEAD = ("classifier.weight", "classifier.bias")


def blocks(block_config, widen_factor):
    """[(block index, [(layer name, in channels)], transition (in, out) or None)], the growth and the
    features' final width; widen_factor scales the initial features and the growth rate."""
    growth, features = scaled(GROWTH_RATE, widen_factor), scaled(INIT_FEATURES, widen_factor)
    out = []
    for index, n_layers in enumerate(block_config, start=1):
        layers = [(f"denselayer{j + 1}", features + j * growth) for j in range(n_layers)]
        features += n_layers * growth
        transition = None
        if index < len(block_config):
            transition, features = (features, features // 2), features // 2
        out.append((index, layers, transition))
    return out, growth, features


def _shapes(spec, n_classes, n_input_channels, widen_factor, conv1_t_size, conv1_t_stride, no_max_pool):
    shapes = {}
    init = scaled(INIT_FEATURES, widen_factor)
    conv(shapes, "features.conv0", init, n_input_channels, (conv1_t_size, 7, 7))
    batchnorm(shapes, "features.norm0", init)
    dense_blocks, growth, features = blocks(spec.structure["block_config"], widen_factor)
    for index, layers, transition in dense_blocks:
        for layer, in_channels in layers:
            name = f"features.denseblock{index}.{layer}"
            batchnorm(shapes, f"{name}.norm.1", in_channels)
            conv(shapes, f"{name}.conv.1", BN_SIZE * growth, in_channels, (1, 1, 1))
            batchnorm(shapes, f"{name}.norm.2", BN_SIZE * growth)
            conv(shapes, f"{name}.conv.2", growth, BN_SIZE * growth, (3, 3, 3))
        if transition:
            batchnorm(shapes, f"features.transition{index}.norm", transition[0])
            conv(shapes, f"features.transition{index}.conv", transition[1], transition[0], (1, 1, 1))
    batchnorm(shapes, "features.norm5", features)
    shapes["classifier.weight"] = (n_classes, features)
    shapes["classifier.bias"] = (n_classes,)
    return shapes


def _infer(spec, shapes):
    kwargs = {}
    stem, growth = shapes.get("features.conv0.weight"), shapes.get("features.denseblock1.denselayer1.conv.2.weight")
    kwargs["widen_factor"] = widen_factor([pair for pair in ((stem and stem[0], INIT_FEATURES),
                                                             (growth and growth[0], GROWTH_RATE)) if pair[0]])
    if stem:
        kwargs["n_input_channels"], kwargs["conv1_t_size"] = stem[1], stem[2]
    if "classifier.weight" in shapes:
        kwargs["n_classes"] = shapes["classifier.weight"][0]
    return kwargs


def _identify(shapes):
    if "features.conv0.weight" not in shapes:
        return None
    config = tuple(len({name.split(".")[2] for name in shapes if name.startswith(f"features.denseblock{index}.")})
                   for index in range(1, 5))
    depth = next((d for d, layers in DEPTHS.items() if layers == config), None)
    return None if depth is None else f"densenet{depth}"


for _depth, _config in DEPTHS.items():
    register(ArchSpec(f"densenet{_depth}", "densenet", "densenet", _depth, {"block_config": _config}, OPTIONS, HEAD,
                      _shapes, _infer, _identify, kenshohara=f"densenet-{_depth}"))
