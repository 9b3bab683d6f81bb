"""3D ResNets, as kenshohara/3D-ResNets-PyTorch models/resnet.py.

Same module tree (hence the same parameter names) as the community
checkpoints, so `r3d50_K_200ep.pth` and friends load as they are.
"""
from mindspore import nn, ops
from mindspore.common.initializer import HeNormal, One, Zero, initializer

from core.archs import RESNET_DEPTHS, RESNET_INPLANES, scaled

# MindSpore's momentum weighs the old running value: 1 - PyTorch's default 0.1.
BN_MOMENTUM = 0.9


def conv3x3x3(in_planes, out_planes, stride=1):
    return nn.Conv3d(in_planes, out_planes, kernel_size=3, stride=stride, pad_mode="pad", padding=1,
                     has_bias=False)


def conv1x1x1(in_planes, out_planes, stride=1):
    return nn.Conv3d(in_planes, out_planes, kernel_size=1, stride=stride, has_bias=False)


class BasicBlock(nn.Cell):
    expansion = 1

    def __init__(self, in_planes, planes, stride=1, downsample=None):
        super().__init__()
        self.conv1 = conv3x3x3(in_planes, planes, stride)
        self.bn1 = nn.BatchNorm3d(planes, momentum=BN_MOMENTUM)
        self.relu = nn.ReLU()
        self.conv2 = conv3x3x3(planes, planes)
        self.bn2 = nn.BatchNorm3d(planes, momentum=BN_MOMENTUM)
        self.downsample = downsample

    def construct(self, x):
        residual = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return self.relu(out + residual)


class Bottleneck(nn.Cell):
    expansion = 4

    def __init__(self, in_planes, planes, stride=1, downsample=None):
        super().__init__()
        self.conv1 = conv1x1x1(in_planes, planes)
        self.bn1 = nn.BatchNorm3d(planes, momentum=BN_MOMENTUM)
        self.conv2 = conv3x3x3(planes, planes, stride)
        self.bn2 = nn.BatchNorm3d(planes, momentum=BN_MOMENTUM)
        self.conv3 = conv1x1x1(planes, planes * self.expansion)
        self.bn3 = nn.BatchNorm3d(planes * self.expansion, momentum=BN_MOMENTUM)
        self.relu = nn.ReLU()
        self.downsample = downsample

    def construct(self, x):
        residual = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        return self.relu(out + residual)


class ZeroPadShortcut(nn.Cell):
    """Shortcut 'A': subsample with a 1x1x1 average pool, zero-fill the extra channels."""

    def __init__(self, out_planes, stride):
        super().__init__()
        self.out_planes = out_planes
        self.stride = stride

    def construct(self, x):
        out = ops.avg_pool3d(x, kernel_size=1, stride=self.stride)
        zeros = ops.zeros((out.shape[0], self.out_planes - out.shape[1]) + tuple(out.shape[2:]), out.dtype)
        return ops.cat([out, zeros], axis=1)


def make_layer(block, in_planes, planes, blocks, shortcut_type, stride=1):
    """One stage: `blocks` blocks, the first one changing stride and width. Returns (stage, out_planes)."""
    out_planes = planes * block.expansion
    downsample = None
    if stride != 1 or in_planes != out_planes:
        if shortcut_type == "A":
            downsample = ZeroPadShortcut(out_planes, stride)
        else:
            downsample = nn.SequentialCell(conv1x1x1(in_planes, out_planes, stride),
                                           nn.BatchNorm3d(out_planes, momentum=BN_MOMENTUM))
    layers = [block(in_planes, planes, stride, downsample)]
    layers += [block(out_planes, planes) for _ in range(1, blocks)]
    return nn.SequentialCell(layers), out_planes


def init_weights(model):
    """kenshohara's initialisation: He normal (fan out) convs, unit BatchNorms."""
    for _, m in model.cells_and_names():
        if isinstance(m, nn.Conv3d):
            m.weight.set_data(initializer(HeNormal(mode="fan_out", nonlinearity="relu"), m.weight.shape))
        elif isinstance(m, nn.BatchNorm3d):
            m.bn2d.gamma.set_data(initializer(One(), m.bn2d.gamma.shape))
            m.bn2d.beta.set_data(initializer(Zero(), m.bn2d.beta.shape))


class ResNet(nn.Cell):

    def __init__(self, block, layers, n_classes=400, n_input_channels=3, widen_factor=1.0, conv1_t_size=7,
                 conv1_t_stride=1, no_max_pool=False, shortcut_type="B"):
        super().__init__()
        planes = [scaled(p, widen_factor) for p in RESNET_INPLANES]
        self.no_max_pool = no_max_pool
        t_pad = conv1_t_size // 2
        self.conv1 = nn.Conv3d(n_input_channels, planes[0], kernel_size=(conv1_t_size, 7, 7),
                               stride=(conv1_t_stride, 2, 2), pad_mode="pad", padding=(t_pad, t_pad, 3, 3, 3, 3),
                               has_bias=False)
        self.bn1 = nn.BatchNorm3d(planes[0], momentum=BN_MOMENTUM)
        self.relu = nn.ReLU()
        # pad_mode "pad" pads with -inf, as PyTorch.
        self.maxpool = nn.MaxPool3d(kernel_size=3, stride=2, pad_mode="pad", padding=1)
        self.layer1, in_planes = make_layer(block, planes[0], planes[0], layers[0], shortcut_type)
        self.layer2, in_planes = make_layer(block, in_planes, planes[1], layers[1], shortcut_type, stride=2)
        self.layer3, in_planes = make_layer(block, in_planes, planes[2], layers[2], shortcut_type, stride=2)
        self.layer4, in_planes = make_layer(block, in_planes, planes[3], layers[3], shortcut_type, stride=2)
        self.avgpool = nn.AdaptiveAvgPool3d(1)
        self.fc = nn.Dense(in_planes, n_classes)
        init_weights(self)

    def construct(self, x):
        x = self.relu(self.bn1(self.conv1(x)))
        if not self.no_max_pool:
            x = self.maxpool(x)
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
        return self.fc(ops.flatten(self.avgpool(x), start_dim=1))


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
