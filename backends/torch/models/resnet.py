"""3D ResNets, as kenshohara/3D-ResNets-PyTorch models/resnet.py.

Same module tree (hence the same parameter names) as the community
checkpoints, so `r3d50_K_200ep.pth` and friends load as they are.
"""
import torch
import torch.nn.functional as F
from torch import nn

from core.archs import RESNET_DEPTHS, RESNET_INPLANES, scaled


def conv3x3x3(in_planes, out_planes, stride=1):
    return nn.Conv3d(in_planes, out_planes, kernel_size=3, stride=stride, padding=1, bias=False)


def conv1x1x1(in_planes, out_planes, stride=1):
    return nn.Conv3d(in_planes, out_planes, kernel_size=1, stride=stride, bias=False)


class BasicBlock(nn.Module):
    expansion = 1

    def __init__(self, in_planes, planes, stride=1, downsample=None):
        super().__init__()
        self.conv1 = conv3x3x3(in_planes, planes, stride)
        self.bn1 = nn.BatchNorm3d(planes)
        self.relu = nn.ReLU(inplace=True)
        self.conv2 = conv3x3x3(planes, planes)
        self.bn2 = nn.BatchNorm3d(planes)
        self.downsample = downsample

    def forward(self, x):
        residual = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return self.relu(out + residual)


class Bottleneck(nn.Module):
    expansion = 4

    def __init__(self, in_planes, planes, stride=1, downsample=None):
        super().__init__()
        self.conv1 = conv1x1x1(in_planes, planes)
        self.bn1 = nn.BatchNorm3d(planes)
        self.conv2 = conv3x3x3(planes, planes, stride)
        self.bn2 = nn.BatchNorm3d(planes)
        self.conv3 = conv1x1x1(planes, planes * self.expansion)
        self.bn3 = nn.BatchNorm3d(planes * self.expansion)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = downsample

    def forward(self, x):
        residual = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        return self.relu(out + residual)


class ZeroPadShortcut(nn.Module):
    """Shortcut 'A': subsample with a 1x1x1 average pool, zero-fill the extra channels."""

    def __init__(self, out_planes, stride):
        super().__init__()
        self.out_planes = out_planes
        self.stride = stride

    def forward(self, x):
        out = F.avg_pool3d(x, kernel_size=1, stride=self.stride)
        zeros = out.new_zeros((out.shape[0], self.out_planes - out.shape[1]) + tuple(out.shape[2:]))
        return torch.cat([out, zeros], dim=1)


def make_layer(block, in_planes, planes, blocks, shortcut_type, stride=1):
    """One stage: `blocks` blocks, the first one changing stride and width. Returns (stage, out_planes)."""
    out_planes = planes * block.expansion
    downsample = None
    if stride != 1 or in_planes != out_planes:
        if shortcut_type == "A":
            downsample = ZeroPadShortcut(out_planes, stride)
        else:
            downsample = nn.Sequential(conv1x1x1(in_planes, out_planes, stride), nn.BatchNorm3d(out_planes))
    layers = [block(in_planes, planes, stride, downsample)]
    layers += [block(out_planes, planes) for _ in range(1, blocks)]
    return nn.Sequential(*layers), out_planes


def init_weights(model):
    """kenshohara's initialisation: He normal (fan out) convs, unit BatchNorms."""
    for m in model.modules():
        if isinstance(m, nn.Conv3d):
            nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
        elif isinstance(m, nn.BatchNorm3d):
            nn.init.constant_(m.weight, 1)
            nn.init.constant_(m.bias, 0)


class ResNet(nn.Module):

    def __init__(self, block, layers, n_classes=400, n_input_channels=3, widen_factor=1.0, conv1_t_size=7,
                 conv1_t_stride=1, no_max_pool=False, shortcut_type="B"):
        super().__init__()
        planes = [scaled(p, widen_factor) for p in RESNET_INPLANES]
        self.no_max_pool = no_max_pool
        self.conv1 = nn.Conv3d(n_input_channels, planes[0], kernel_size=(conv1_t_size, 7, 7),
                               stride=(conv1_t_stride, 2, 2), padding=(conv1_t_size // 2, 3, 3), bias=False)
        self.bn1 = nn.BatchNorm3d(planes[0])
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool3d(kernel_size=3, stride=2, padding=1)
        self.layer1, in_planes = make_layer(block, planes[0], planes[0], layers[0], shortcut_type)
        self.layer2, in_planes = make_layer(block, in_planes, planes[1], layers[1], shortcut_type, stride=2)
        self.layer3, in_planes = make_layer(block, in_planes, planes[2], layers[2], shortcut_type, stride=2)
        self.layer4, in_planes = make_layer(block, in_planes, planes[3], layers[3], shortcut_type, stride=2)
        self.avgpool = nn.AdaptiveAvgPool3d(1)
        self.fc = nn.Linear(in_planes, n_classes)
        init_weights(self)

    def forward(self, x):
        x = self.relu(self.bn1(self.conv1(x)))
        if not self.no_max_pool:
            x = self.maxpool(x)
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
        return self.fc(torch.flatten(self.avgpool(x), 1))


BLOCKS = {"basic": BasicBlock, "bottleneck": Bottleneck}


def _resnet(depth, **kwargs):
    block, layers = RESNET_DEPTHS[depth]
    return ResNet(BLOCKS[block], layers, **kwargs)


def resnet10(**kwargs):
    return _resnet(10, **kwargs)


def resnet18(**kwargs):
    return _resnet(18, **kwargs)


def resnet34(**kwargs):
    return _resnet(34, **kwargs)


def resnet50(**kwargs):
    return _resnet(50, **kwargs)


def resnet101(**kwargs):
    return _resnet(101, **kwargs)


def resnet152(**kwargs):
    return _resnet(152, **kwargs)


def resnet200(**kwargs):
    return _resnet(200, **kwargs)
