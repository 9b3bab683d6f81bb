"""ResNeXt (and Wide ResNet, the same tree ungrouped), as kenshohara/3D-ResNets-PyTorch models/resnext.py and
wide_resnet.py of his CVPR2018 branch (core/archs/resnext.py lists every conv and says why that tree)."""
import importlib

import paddle
from paddle import nn

from backends.paddle.models.resnet import BatchNorm3D, init_weights, shortcut


class Bottleneck(nn.Layer):
    """conv1-bn1-relu, conv2 (grouped, strided)-bn2-relu, conv3-bn3, plus the shortcut, relu."""

    def __init__(self, in_planes, mid, out, groups, stride, downsample):
        super().__init__()
        self.conv1 = nn.Conv3D(in_planes, mid, 1, bias_attr=False)
        self.bn1 = BatchNorm3D(mid)
        self.conv2 = nn.Conv3D(mid, mid, 3, stride, 1, groups=groups, bias_attr=False)
        self.bn2 = BatchNorm3D(mid)
        self.conv3 = nn.Conv3D(mid, out, 1, bias_attr=False)
        self.bn3 = BatchNorm3D(out)
        self.relu = nn.ReLU()
        self.downsample = downsample

    def forward(self, x):
        residual = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.relu(self.bn2(self.conv2(out)))
        return self.relu(self.bn3(self.conv3(out)) + residual)


class BottleneckResNet(nn.Layer):
    """A ResNet of Bottleneck blocks built from (stem width, blocks, features width) of the family's spec."""

    def __init__(self, stem, blocks, features, n_classes, n_input_channels, conv1_t_size, conv1_t_stride,
                 no_max_pool, shortcut_type):
        super().__init__()
        self.conv1 = nn.Conv3D(n_input_channels, stem, (conv1_t_size, 7, 7), (conv1_t_stride, 2, 2),
                               (conv1_t_size // 2, 3, 3), bias_attr=False)
        self.bn1 = BatchNorm3D(stem)
        self.relu = nn.ReLU()
        self.no_max_pool = no_max_pool
        self.maxpool = nn.MaxPool3D(kernel_size=3, stride=2, padding=1)  # pads with -inf, as PyTorch
        stages = {}
        for name, in_planes, mid, out, groups, stride in blocks:
            stages.setdefault(name.split(".")[0], []).append(
                Bottleneck(in_planes, mid, out, groups, stride, shortcut(shortcut_type, in_planes, out, stride)))
        for stage, layer in stages.items():
            self.add_sublayer(stage, nn.Sequential(*layer))
        self.avgpool = nn.AdaptiveAvgPool3D(1)
        self.fc = nn.Linear(features, n_classes)
        init_weights(self)

    def forward(self, x):
        x = self.relu(self.bn1(self.conv1(x)))
        if not self.no_max_pool:
            x = self.maxpool(x)
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
        return self.fc(paddle.flatten(self.avgpool(x), 1))


def build(spec, n_classes, n_input_channels, conv1_t_size, conv1_t_stride, no_max_pool, shortcut_type, **widths):
    """widths: widen_factor and cardinality (ResNeXt) or k and wide_stem (Wide ResNet), for the spec's layout."""
    layout = importlib.import_module(f"core.archs.{spec.family}").layout(spec, **widths)
    return BottleneckResNet(*layout, n_classes, n_input_channels, conv1_t_size, conv1_t_stride, no_max_pool,
                            shortcut_type)
