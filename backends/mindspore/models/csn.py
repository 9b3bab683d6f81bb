"""ip-CSN and ir-CSN, as MMAction2's ResNet3dCSN + I3DHead (core/archs/csn.py lists the tree and its sources).

Same module tree as MMAction2's CSN checkpoints without `backbone.` / `cls_head.`, so they load as they are.
"""
from mindspore import nn, ops
from mindspore.common.initializer import Normal, Zero, initializer

from backends.mindspore.models.resnet import init_weights
from core.archs.csn import BN_EPS, BN_MOMENTUM, MAXPOOL, blocks, stem_conv


class ConvModule(nn.Cell):
    """mmcv's ConvModule: conv (no bias) -> BatchNorm -> ReLU (or none)."""

    def __init__(self, in_channels, out_channels, kernel, stride=1, groups=1, relu=True):
        super().__init__()
        # MindSpore pads (front, back, top, bottom, left, right).
        self.conv = nn.Conv3d(in_channels, out_channels, kernel, stride, pad_mode="pad",
                              padding=tuple(k // 2 for k in kernel for _ in range(2)), group=groups, has_bias=False)
        # MindSpore's momentum weighs the old running value: 1 - PyTorch's.
        self.bn = nn.BatchNorm3d(out_channels, eps=BN_EPS, momentum=1 - BN_MOMENTUM)
        self.relu = relu

    def construct(self, x):
        x = self.bn(self.conv(x))
        return ops.relu(x) if self.relu else x


class Bottleneck(nn.Cell):
    """conv1, conv2 (a Sequential: ip's 1x1x1 + depthwise, ir's depthwise), conv3, plus the shortcut, ReLU."""

    def __init__(self, units, downsample):
        super().__init__()
        modules = {path: ConvModule(*unit) for path, *unit in units}
        self.conv1 = modules["conv1"]
        self.conv2 = nn.SequentialCell([module for path, module in modules.items() if path.startswith("conv2.")])
        self.conv3 = modules["conv3"]
        self.downsample = None if downsample is None else ConvModule(*downsample[:2], (1, 1, 1), downsample[2],
                                                                     relu=False)

    def construct(self, x):
        identity = x if self.downsample is None else self.downsample(x)
        return ops.relu(self.conv3(self.conv2(self.conv1(x))) + identity)


class CSN(nn.Cell):

    def __init__(self, spec, n_classes, n_input_channels, widen_factor, dropout):
        super().__init__()
        self.conv1 = ConvModule(*stem_conv(n_input_channels, widen_factor))
        kernel, stride, padding = MAXPOOL
        # pad_mode "pad" pads with -inf, as PyTorch.
        self.maxpool = nn.MaxPool3d(kernel_size=kernel, stride=stride, pad_mode="pad", padding=padding)
        layout, features = blocks(spec, widen_factor)
        stages = {}
        for name, units, downsample in layout:
            stages.setdefault(name.split(".")[0], []).append(Bottleneck(units, downsample))
        # setattr (not insert_child_to_cell) so that the parameters' own names carry the cell's path too.
        for stage, layer in stages.items():
            setattr(self, stage, nn.SequentialCell(layer))
        self.avg_pool = nn.AdaptiveAvgPool3d(1)
        self.dropout = nn.Dropout(p=dropout)
        self.fc_cls = nn.Dense(features, n_classes)
        # MMAction2's initialisation: He normal (fan out) convs, unit BatchNorms (zero_init_residual=False in its
        # CSN configs), I3DHead's normal(0, 0.01) fc_cls with zero bias.
        init_weights(self)
        self.fc_cls.weight.set_data(initializer(Normal(0.01), self.fc_cls.weight.shape))
        self.fc_cls.bias.set_data(initializer(Zero(), self.fc_cls.bias.shape))

    def construct(self, x):
        x = self.maxpool(self.conv1(x))
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
        return self.fc_cls(ops.flatten(self.dropout(self.avg_pool(x)), start_dim=1))


def build(spec, **kwargs):
    return CSN(spec, **kwargs)
