"""ip-CSN and ir-CSN, as MMAction2's ResNet3dCSN + I3DHead (core/archs/csn.py lists the tree and its sources).

Same module tree as MMAction2's CSN checkpoints without `backbone.` / `cls_head.`, so they load as they are.
"""
import torch
from torch import nn

from backends.torch.models.resnet import init_weights
from core.archs.csn import BN_EPS, BN_MOMENTUM, MAXPOOL, blocks, stem_conv


class ConvModule(nn.Module):
    """mmcv's ConvModule: conv (no bias) -> BatchNorm -> ReLU (or none)."""

    def __init__(self, in_channels, out_channels, kernel, stride=1, groups=1, relu=True):
        super().__init__()
        self.conv = nn.Conv3d(in_channels, out_channels, kernel, stride, tuple(k // 2 for k in kernel), groups=groups,
                              bias=False)
        self.bn = nn.BatchNorm3d(out_channels, eps=BN_EPS, momentum=BN_MOMENTUM)
        self.relu = relu

    def forward(self, x):
        x = self.bn(self.conv(x))
        return torch.relu(x) if self.relu else x


class Bottleneck(nn.Module):
    """conv1, conv2 (a Sequential: ip's 1x1x1 + depthwise, ir's depthwise), conv3, plus the shortcut, ReLU."""

    def __init__(self, units, downsample):
        super().__init__()
        modules = {path: ConvModule(*unit) for path, *unit in units}
        self.conv1 = modules["conv1"]
        self.conv2 = nn.Sequential(*(module for path, module in modules.items() if path.startswith("conv2.")))
        self.conv3 = modules["conv3"]
        self.downsample = None if downsample is None else ConvModule(*downsample[:2], (1, 1, 1), downsample[2],
                                                                     relu=False)

    def forward(self, x):
        identity = x if self.downsample is None else self.downsample(x)
        return torch.relu(self.conv3(self.conv2(self.conv1(x))) + identity)


class CSN(nn.Module):

    def __init__(self, spec, n_classes, n_input_channels, widen_factor, dropout):
        super().__init__()
        self.conv1 = ConvModule(*stem_conv(n_input_channels, widen_factor))
        self.maxpool = nn.MaxPool3d(*MAXPOOL)
        layout, features = blocks(spec, widen_factor)
        stages = {}
        for name, units, downsample in layout:
            stages.setdefault(name.split(".")[0], []).append(Bottleneck(units, downsample))
        for stage, layer in stages.items():
            self.add_module(stage, nn.Sequential(*layer))
        self.avg_pool = nn.AdaptiveAvgPool3d(1)
        self.dropout = nn.Dropout(dropout)
        self.fc_cls = nn.Linear(features, n_classes)
        # MMAction2's initialisation: He normal (fan out) convs, unit BatchNorms (zero_init_residual=False in its
        # CSN configs), I3DHead's normal(0, 0.01) fc_cls with zero bias.
        init_weights(self)
        nn.init.normal_(self.fc_cls.weight, std=0.01)
        nn.init.zeros_(self.fc_cls.bias)

    def forward(self, x):
        x = self.maxpool(self.conv1(x))
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
        return self.fc_cls(torch.flatten(self.dropout(self.avg_pool(x)), 1))


def build(spec, **kwargs):
    return CSN(spec, **kwargs)
