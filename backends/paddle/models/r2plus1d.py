"""R(2+1)D, as kenshohara/3D-ResNets-PyTorch models/resnet2p1d.py.

Every 3x3x3 conv of the 3D ResNet becomes a spatial 1x3x3 conv (`*_s`) and a
temporal 3x1x1 conv (`*_t`) with a BatchNorm and ReLU between them; the middle
width keeps the parameter count of the 3D conv it replaces.
"""
import paddle
from paddle import nn

from core.archs import RESNET_DEPTHS, RESNET_INPLANES, r2plus1d_mid_planes, r2plus1d_stem_mid_planes, scaled
from .resnet import BatchNorm3D, conv1x1x1, init_weights, make_layer


def conv1x3x3(in_planes, mid_planes, stride=1):
    return nn.Conv3D(in_planes, mid_planes, kernel_size=(1, 3, 3), stride=(1, stride, stride),
                     padding=(0, 1, 1), bias_attr=False)


def conv3x1x1(mid_planes, planes, stride=1):
    return nn.Conv3D(mid_planes, planes, kernel_size=(3, 1, 1), stride=(stride, 1, 1),
                     padding=(1, 0, 0), bias_attr=False)


class BasicBlock(nn.Layer):
    expansion = 1

    def __init__(self, in_planes, planes, stride=1, downsample=None):
        super().__init__()
        mid_planes1 = r2plus1d_mid_planes(in_planes, planes)
        self.conv1_s = conv1x3x3(in_planes, mid_planes1, stride)
        self.bn1_s = BatchNorm3D(mid_planes1)
        self.conv1_t = conv3x1x1(mid_planes1, planes, stride)
        self.bn1_t = BatchNorm3D(planes)
        mid_planes2 = r2plus1d_mid_planes(planes, planes)
        self.conv2_s = conv1x3x3(planes, mid_planes2)
        self.bn2_s = BatchNorm3D(mid_planes2)
        self.conv2_t = conv3x1x1(mid_planes2, planes)
        self.bn2_t = BatchNorm3D(planes)
        self.relu = nn.ReLU()
        self.downsample = downsample

    def forward(self, x):
        residual = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1_s(self.conv1_s(x)))
        out = self.relu(self.bn1_t(self.conv1_t(out)))
        out = self.relu(self.bn2_s(self.conv2_s(out)))
        out = self.bn2_t(self.conv2_t(out))
        return self.relu(out + residual)


class Bottleneck(nn.Layer):
    expansion = 4

    def __init__(self, in_planes, planes, stride=1, downsample=None):
        super().__init__()
        self.conv1 = conv1x1x1(in_planes, planes)
        self.bn1 = BatchNorm3D(planes)
        mid_planes = r2plus1d_mid_planes(planes, planes)
        self.conv2_s = conv1x3x3(planes, mid_planes, stride)
        self.bn2_s = BatchNorm3D(mid_planes)
        self.conv2_t = conv3x1x1(mid_planes, planes, stride)
        self.bn2_t = BatchNorm3D(planes)
        self.conv3 = conv1x1x1(planes, planes * self.expansion)
        self.bn3 = BatchNorm3D(planes * self.expansion)
        self.relu = nn.ReLU()
        self.downsample = downsample

    def forward(self, x):
        residual = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.relu(self.bn2_s(self.conv2_s(out)))
        out = self.relu(self.bn2_t(self.conv2_t(out)))
        out = self.bn3(self.conv3(out))
        return self.relu(out + residual)


class R2Plus1D(nn.Layer):

    def __init__(self, block, layers, n_classes=400, n_input_channels=3, widen_factor=1.0, conv1_t_size=7,
                 conv1_t_stride=1, no_max_pool=False, shortcut_type="B"):
        super().__init__()
        planes = [scaled(p, widen_factor) for p in RESNET_INPLANES]
        stem_mid_planes = r2plus1d_stem_mid_planes(planes[0], conv1_t_size)
        self.no_max_pool = no_max_pool
        self.conv1_s = nn.Conv3D(n_input_channels, stem_mid_planes, kernel_size=(1, 7, 7), stride=(1, 2, 2),
                                 padding=(0, 3, 3), bias_attr=False)
        self.bn1_s = BatchNorm3D(stem_mid_planes)
        self.conv1_t = nn.Conv3D(stem_mid_planes, planes[0], kernel_size=(conv1_t_size, 1, 1),
                                 stride=(conv1_t_stride, 1, 1), padding=(conv1_t_size // 2, 0, 0), bias_attr=False)
        self.bn1_t = BatchNorm3D(planes[0])
        self.relu = nn.ReLU()
        self.maxpool = nn.MaxPool3D(kernel_size=3, stride=2, padding=1)
        self.layer1, in_planes = make_layer(block, planes[0], planes[0], layers[0], shortcut_type)
        self.layer2, in_planes = make_layer(block, in_planes, planes[1], layers[1], shortcut_type, stride=2)
        self.layer3, in_planes = make_layer(block, in_planes, planes[2], layers[2], shortcut_type, stride=2)
        self.layer4, in_planes = make_layer(block, in_planes, planes[3], layers[3], shortcut_type, stride=2)
        self.avgpool = nn.AdaptiveAvgPool3D(1)
        self.fc = nn.Linear(in_planes, n_classes)
        init_weights(self)

    def forward(self, x):
        x = self.relu(self.bn1_s(self.conv1_s(x)))
        x = self.relu(self.bn1_t(self.conv1_t(x)))
        if not self.no_max_pool:
            x = self.maxpool(x)
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
        return self.fc(paddle.flatten(self.avgpool(x), 1))


BLOCKS = {"basic": BasicBlock, "bottleneck": Bottleneck}


def _r2plus1d(depth, **kwargs):
    block, layers = RESNET_DEPTHS[depth]
    return R2Plus1D(BLOCKS[block], layers, **kwargs)


def r2plus1d_18(**kwargs):
    return _r2plus1d(18, **kwargs)


def r2plus1d_34(**kwargs):
    return _r2plus1d(34, **kwargs)


def r2plus1d_50(**kwargs):
    return _r2plus1d(50, **kwargs)
