"""S3D, as kylemin/S3D model.py (core/archs/s3d.py lists its tree and where it differs from I3D).

Same module tree as S3D_kinetics400.pt (`base.N...`, `fc.0`), so it loads as it is.
"""
import torch
import torch.nn.functional as F
from torch import nn

from core.archs import scaled
from core.archs.i3d import mixed_out_channels
from core.archs.s3d import BASE, BN_EPS, BN_MOMENTUM, BRANCH_POOL, avg_pool_kernel, branches


class BasicConv3d(nn.Module):
    """1x1x1 conv -> BatchNorm -> ReLU."""

    def __init__(self, in_planes, out_planes):
        super().__init__()
        self.conv = nn.Conv3d(in_planes, out_planes, kernel_size=1, bias=False)
        self.bn = nn.BatchNorm3d(out_planes, eps=BN_EPS, momentum=BN_MOMENTUM)

    def forward(self, x):
        return F.relu(self.bn(self.conv(x)))


class SepConv3d(nn.Module):
    """(1, k, k) conv -> BatchNorm -> ReLU -> (k, 1, 1) conv -> BatchNorm -> ReLU."""

    def __init__(self, in_planes, out_planes, kernel_size=3, stride=1, padding=1):
        super().__init__()
        self.conv_s = nn.Conv3d(in_planes, out_planes, (1, kernel_size, kernel_size), (1, stride, stride),
                                (0, padding, padding), bias=False)
        self.bn_s = nn.BatchNorm3d(out_planes, eps=BN_EPS, momentum=BN_MOMENTUM)
        self.conv_t = nn.Conv3d(out_planes, out_planes, (kernel_size, 1, 1), (stride, 1, 1), (padding, 0, 0),
                                bias=False)
        self.bn_t = nn.BatchNorm3d(out_planes, eps=BN_EPS, momentum=BN_MOMENTUM)

    def forward(self, x):
        return F.relu(self.bn_t(self.conv_t(F.relu(self.bn_s(self.conv_s(x))))))


def unit(kind, in_planes, out_planes):
    return BasicConv3d(in_planes, out_planes) if kind == "basic" else SepConv3d(in_planes, out_planes)


class Mixed(nn.Module):
    """Four branches concatenated: 1x1x1; 1x1x1 -> sep 3; 1x1x1 -> sep 3; 3x3x3 max pool -> 1x1x1."""

    def __init__(self, in_channels, widths):
        super().__init__()
        units = {path: unit(kind, conv_in, conv_out) for path, kind, conv_in, conv_out in branches(in_channels, widths)}
        self.branch0 = nn.Sequential(units["branch0.0"])
        self.branch1 = nn.Sequential(units["branch1.0"], units["branch1.1"])
        self.branch2 = nn.Sequential(units["branch2.0"], units["branch2.1"])
        self.branch3 = nn.Sequential(nn.MaxPool3d(*BRANCH_POOL), units["branch3.1"])

    def forward(self, x):
        return torch.cat([self.branch0(x), self.branch1(x), self.branch2(x), self.branch3(x)], dim=1)


class S3D(nn.Module):

    def __init__(self, n_classes, n_input_channels, widen_factor):
        super().__init__()
        layers, channels = [], n_input_channels
        for kind, *layer in BASE:
            if kind == "sep":
                width, kernel, stride, padding = layer
                layers.append(SepConv3d(channels, scaled(width, widen_factor), kernel, stride, padding))
                channels = scaled(width, widen_factor)
            elif kind == "basic":
                layers.append(BasicConv3d(channels, scaled(layer[0], widen_factor)))
                channels = scaled(layer[0], widen_factor)
            elif kind == "pool":
                layers.append(nn.MaxPool3d(*layer))
            else:
                widths = [scaled(w, widen_factor) for w in layer[0]]
                layers.append(Mixed(channels, widths))
                channels = mixed_out_channels(widths)
        self.base = nn.Sequential(*layers)
        self.fc = nn.Sequential(nn.Conv3d(channels, n_classes, kernel_size=1, bias=True))

    def forward(self, x):
        x = self.base(x)
        x = F.avg_pool3d(x, avg_pool_kernel(*x.shape[2:]), stride=1)
        return self.fc(x).mean(dim=(2, 3, 4))


def build(spec, **kwargs):
    return S3D(**kwargs)
