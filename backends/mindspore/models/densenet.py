"""3D DenseNet-BC, as kenshohara/3D-ResNets-PyTorch models/densenet.py of his CVPR2018 branch
(core/archs/densenet.py lists every layer; his `norm.1` / `conv.1` are containers `norm` / `conv` here)."""
from mindspore import nn, ops

from backends.mindspore.models.resnet import BN_MOMENTUM, conv3d, init_weights
from core.archs import scaled
from core.archs.densenet import BN_SIZE, INIT_FEATURES, blocks


def batchnorm(channels):
    return nn.BatchNorm3d(channels, momentum=BN_MOMENTUM)


class DenseLayer(nn.Cell):
    """norm.1-relu-conv.1 (1x1x1), norm.2-relu-conv.2 (3x3x3); the output is the input with the new features."""

    def __init__(self, in_channels, growth):
        super().__init__()
        self.norm = nn.CellDict({"1": batchnorm(in_channels), "2": batchnorm(BN_SIZE * growth)})
        self.conv = nn.CellDict({"1": conv3d(in_channels, BN_SIZE * growth, 1),
                                 "2": conv3d(BN_SIZE * growth, growth, 3, 1, (1, 1, 1))})

    def construct(self, x):
        out = self.conv["1"](ops.relu(self.norm["1"](x)))
        out = self.conv["2"](ops.relu(self.norm["2"](out)))
        return ops.cat([x, out], axis=1)


class DenseBlock(nn.Cell):
    """denselayer1, denselayer2, ... in order."""

    def __init__(self, layers, growth):
        super().__init__()
        self.names = []
        for name, in_channels in layers:
            setattr(self, name, DenseLayer(in_channels, growth))
            self.names.append(name)

    def construct(self, x):
        for name in self.names:
            x = getattr(self, name)(x)
        return x


class Transition(nn.Cell):
    """norm-relu-conv (1x1x1), average pooling 2, stride 2."""

    def __init__(self, in_channels, out_channels):
        super().__init__()
        self.norm = batchnorm(in_channels)
        self.conv = conv3d(in_channels, out_channels, 1)
        self.pool = nn.AvgPool3d(kernel_size=2, stride=2)

    def construct(self, x):
        return self.pool(self.conv(ops.relu(self.norm(x))))


class Features(nn.Cell):
    """The container `features` (his nn.Sequential): its cells are named, the model runs them."""


class DenseNet(nn.Cell):

    def __init__(self, spec, n_classes, n_input_channels, widen_factor, conv1_t_size, conv1_t_stride, no_max_pool):
        super().__init__()
        init = scaled(INIT_FEATURES, widen_factor)
        # Filled before it is attached: MindSpore prefixes parameter names ('features.') on attachment only.
        cells = Features()
        cells.conv0 = conv3d(n_input_channels, init, (conv1_t_size, 7, 7), (conv1_t_stride, 2, 2),
                             (conv1_t_size // 2, 3, 3))
        cells.norm0 = batchnorm(init)
        # pad_mode "pad" pads with -inf, as PyTorch.
        cells.pool0 = nn.MaxPool3d(kernel_size=3, stride=2, pad_mode="pad", padding=1)
        self.no_max_pool = no_max_pool
        dense_blocks, growth, features = blocks(spec.structure["block_config"], widen_factor)
        self.stages = []
        for index, layers, transition in dense_blocks:
            setattr(cells, f"denseblock{index}", DenseBlock(layers, growth))
            self.stages.append(f"denseblock{index}")
            if transition:
                setattr(cells, f"transition{index}", Transition(*transition))
                self.stages.append(f"transition{index}")
        cells.norm5 = batchnorm(features)
        self.features = cells
        self.avgpool = nn.AdaptiveAvgPool3d(1)
        self.classifier = nn.Dense(features, n_classes)
        init_weights(self)

    def construct(self, x):
        f = self.features
        x = ops.relu(f.norm0(f.conv0(x)))
        if not self.no_max_pool:
            x = f.pool0(x)
        for stage in self.stages:
            x = getattr(f, stage)(x)
        x = ops.relu(f.norm5(x))
        return self.classifier(ops.flatten(self.avgpool(x), start_dim=1))


def build(spec, **kwargs):
    return DenseNet(spec, **kwargs)
