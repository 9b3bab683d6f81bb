"""ResNeXt (and Wide ResNet, the same tree ungrouped), as kenshohara/3D-ResNets-PyTorch models/resnext.py and
wide_resnet.py of his CVPR2018 branch (core/archs/resnext.py lists every conv and says why that tree)."""
import importlib

from mindspore import nn, ops

from backends.mindspore.models.resnet import BN_MOMENTUM, conv3d, init_weights, shortcut


def batchnorm(channels):
    return nn.BatchNorm3d(channels, momentum=BN_MOMENTUM)


class Bottleneck(nn.Cell):
    """conv1-bn1-relu, conv2 (grouped, strided)-bn2-relu, conv3-bn3, plus the shortcut, relu."""

    def __init__(self, in_planes, mid, out, groups, stride, downsample):
        super().__init__()
        self.conv1 = conv3d(in_planes, mid, 1)
        self.bn1 = batchnorm(mid)
        self.conv2 = nn.Conv3d(mid, mid, 3, stride, pad_mode="pad", padding=1, group=groups, has_bias=False)
        self.bn2 = batchnorm(mid)
        self.conv3 = conv3d(mid, out, 1)
        self.bn3 = batchnorm(out)
        self.relu = nn.ReLU()
        self.downsample = downsample

    def construct(self, x):
        residual = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.relu(self.bn2(self.conv2(out)))
        return self.relu(self.bn3(self.conv3(out)) + residual)


class BottleneckResNet(nn.Cell):
    """A ResNet of Bottleneck blocks built from (stem width, blocks, features width) of the family's spec."""

    def __init__(self, stem, blocks, features, n_classes, n_input_channels, conv1_t_size, conv1_t_stride,
                 no_max_pool, shortcut_type):
        super().__init__()
        self.conv1 = conv3d(n_input_channels, stem, (conv1_t_size, 7, 7), (conv1_t_stride, 2, 2),
                            (conv1_t_size // 2, 3, 3))
        self.bn1 = batchnorm(stem)
        self.relu = nn.ReLU()
        self.no_max_pool = no_max_pool
        # pad_mode "pad" pads with -inf, as PyTorch.
        self.maxpool = nn.MaxPool3d(kernel_size=3, stride=2, pad_mode="pad", padding=1)
        stages = {}
        for name, in_planes, mid, out, groups, stride in blocks:
            stages.setdefault(name.split(".")[0], []).append(
                Bottleneck(in_planes, mid, out, groups, stride, shortcut(shortcut_type, in_planes, out, stride)))
        for stage, layer in stages.items():
            setattr(self, stage, nn.SequentialCell(layer))
        self.avgpool = nn.AdaptiveAvgPool3d(1)
        self.fc = nn.Dense(features, n_classes)
        init_weights(self)

    def construct(self, x):
        x = self.relu(self.bn1(self.conv1(x)))
        if not self.no_max_pool:
            x = self.maxpool(x)
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
        return self.fc(ops.flatten(self.avgpool(x), start_dim=1))


def build(spec, n_classes, n_input_channels, conv1_t_size, conv1_t_stride, no_max_pool, shortcut_type, **widths):
    """widths: widen_factor and cardinality (ResNeXt) or k and wide_stem (Wide ResNet), for the spec's layout."""
    layout = importlib.import_module(f"core.archs.{spec.family}").layout(spec, **widths)
    return BottleneckResNet(*layout, n_classes, n_input_channels, conv1_t_size, conv1_t_stride, no_max_pool,
                            shortcut_type)
