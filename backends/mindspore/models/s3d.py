"""S3D, as kylemin/S3D model.py (core/archs/s3d.py lists its tree and where it differs from I3D).

Same module tree as S3D_kinetics400.pt (`base.N...`, `fc.0`), so it loads as it is.
"""
from mindspore import nn, ops

from core.archs import scaled
from core.archs.i3d import mixed_out_channels
from core.archs.s3d import BASE, BN_EPS, BN_MOMENTUM, BRANCH_POOL, avg_pool_kernel, branches


def conv3d(in_planes, out_planes, kernel, stride=(1, 1, 1), padding=(0, 0, 0), bias=False):
    # MindSpore pads (front, back, top, bottom, left, right).
    return nn.Conv3d(in_planes, out_planes, kernel, stride, pad_mode="pad",
                     padding=tuple(p for p in padding for _ in range(2)), has_bias=bias)


def batchnorm(planes):
    # MindSpore's momentum weighs the old running value: 1 - PyTorch's.
    return nn.BatchNorm3d(planes, eps=BN_EPS, momentum=1 - BN_MOMENTUM)


def max_pool(kernel, stride, padding):
    # pad_mode "pad" pads with -inf, as PyTorch.
    return nn.MaxPool3d(kernel_size=kernel, stride=stride, pad_mode="pad", padding=padding)


class BasicConv3d(nn.Cell):
    """1x1x1 conv -> BatchNorm -> ReLU."""

    def __init__(self, in_planes, out_planes):
        super().__init__()
        self.conv = conv3d(in_planes, out_planes, (1, 1, 1))
        self.bn = batchnorm(out_planes)

    def construct(self, x):
        return ops.relu(self.bn(self.conv(x)))


class SepConv3d(nn.Cell):
    """(1, k, k) conv -> BatchNorm -> ReLU -> (k, 1, 1) conv -> BatchNorm -> ReLU."""

    def __init__(self, in_planes, out_planes, kernel_size=3, stride=1, padding=1):
        super().__init__()
        self.conv_s = conv3d(in_planes, out_planes, (1, kernel_size, kernel_size), (1, stride, stride),
                             (0, padding, padding))
        self.bn_s = batchnorm(out_planes)
        self.conv_t = conv3d(out_planes, out_planes, (kernel_size, 1, 1), (stride, 1, 1), (padding, 0, 0))
        self.bn_t = batchnorm(out_planes)

    def construct(self, x):
        return ops.relu(self.bn_t(self.conv_t(ops.relu(self.bn_s(self.conv_s(x))))))


def unit(kind, in_planes, out_planes):
    return BasicConv3d(in_planes, out_planes) if kind == "basic" else SepConv3d(in_planes, out_planes)


class Mixed(nn.Cell):
    """Four branches concatenated: 1x1x1; 1x1x1 -> sep 3; 1x1x1 -> sep 3; 3x3x3 max pool -> 1x1x1."""

    def __init__(self, in_channels, widths):
        super().__init__()
        units = {path: unit(kind, conv_in, conv_out) for path, kind, conv_in, conv_out in branches(in_channels, widths)}
        self.branch0 = nn.SequentialCell([units["branch0.0"]])
        self.branch1 = nn.SequentialCell([units["branch1.0"], units["branch1.1"]])
        self.branch2 = nn.SequentialCell([units["branch2.0"], units["branch2.1"]])
        self.branch3 = nn.SequentialCell([max_pool(*BRANCH_POOL), units["branch3.1"]])

    def construct(self, x):
        return ops.cat([self.branch0(x), self.branch1(x), self.branch2(x), self.branch3(x)], axis=1)


class S3D(nn.Cell):

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
                layers.append(max_pool(*layer))
            else:
                widths = [scaled(w, widen_factor) for w in layer[0]]
                layers.append(Mixed(channels, widths))
                channels = mixed_out_channels(widths)
        self.base = nn.SequentialCell(layers)
        self.fc = nn.SequentialCell([conv3d(channels, n_classes, (1, 1, 1), bias=True)])

    def construct(self, x):
        x = self.base(x)
        x = ops.avg_pool3d(x, kernel_size=avg_pool_kernel(*x.shape[2:]), stride=1)
        return self.fc(x).mean(axis=(2, 3, 4))


def build(spec, **kwargs):
    return S3D(**kwargs)
