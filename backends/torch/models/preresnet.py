"""Pre-activation 3D ResNets, as kenshohara/3D-ResNets-PyTorch models/pre_act_resnet.py of his CVPR2018 branch
(core/archs/preresnet.py lists every conv)."""
import torch
from torch import nn

from backends.torch.models.resnet import init_weights, shortcut
from core.archs import scaled
from core.archs.preresnet import block_convs
from core.archs.resnet import EXPANSION, INPLANES, stages


class PreActivationBlock(nn.Module):
    """bn-relu-conv pairs (bn<i> before conv<i>), then the shortcut of the block's input added, no ReLU."""

    def __init__(self, convs, downsample=None):
        super().__init__()
        self.pairs = []
        for suffix, conv_in, conv_out, kernel, stride, padding in convs:
            self.add_module(f"bn{suffix}", nn.BatchNorm3d(conv_in))
            self.add_module(f"conv{suffix}", nn.Conv3d(conv_in, conv_out, kernel, stride, padding, bias=False))
            self.pairs.append((f"bn{suffix}", f"conv{suffix}"))
        self.relu = nn.ReLU(inplace=True)
        self.downsample = downsample

    def forward(self, x):
        out = x
        for bn, conv in self.pairs:
            out = getattr(self, conv)(self.relu(getattr(self, bn)(out)))
        return out + (x if self.downsample is None else self.downsample(x))


class PreActivationResNet(nn.Module):

    def __init__(self, spec, n_classes, n_input_channels, widen_factor, conv1_t_size, conv1_t_stride, no_max_pool,
                 shortcut_type):
        super().__init__()
        block = spec.structure["block"]
        in_planes = scaled(INPLANES[0], widen_factor)
        self.conv1 = nn.Conv3d(n_input_channels, in_planes, (conv1_t_size, 7, 7), (conv1_t_stride, 2, 2),
                               (conv1_t_size // 2, 3, 3), bias=False)
        self.bn1 = nn.BatchNorm3d(in_planes)
        self.relu = nn.ReLU(inplace=True)
        self.no_max_pool = no_max_pool
        self.maxpool = nn.MaxPool3d(kernel_size=3, stride=2, padding=1)
        for stage, planes, n_blocks, stride in stages(spec.structure["layers"], widen_factor):
            out_planes, blocks = planes * EXPANSION[block], []
            for index in range(n_blocks):
                block_stride = stride if index == 0 else 1
                downsample = shortcut(shortcut_type, in_planes, out_planes, block_stride)
                blocks.append(PreActivationBlock(block_convs(block, in_planes, planes, block_stride), downsample))
                in_planes = out_planes
            self.add_module(f"layer{stage}", nn.Sequential(*blocks))
        self.avgpool = nn.AdaptiveAvgPool3d(1)
        self.fc = nn.Linear(in_planes, n_classes)
        init_weights(self)

    def forward(self, x):
        x = self.relu(self.bn1(self.conv1(x)))
        if not self.no_max_pool:
            x = self.maxpool(x)
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
        return self.fc(torch.flatten(self.avgpool(x), 1))


def build(spec, **kwargs):
    return PreActivationResNet(spec, **kwargs)
