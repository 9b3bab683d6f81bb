"""3D ResNets, as kenshohara/3D-ResNets-PyTorch models/resnet.py.

Same module tree (hence the same parameter names) as the community
checkpoints and the PaddlePaddle port's `.pdparams`, so they load as they are.
"""
import math

import paddle
import paddle.nn.functional as F
from paddle import nn

from core.archs import RESNET_DEPTHS, RESNET_INPLANES, scaled


class BatchNorm3D(nn.BatchNorm3D):
    """nn.BatchNorm3D whose running variance takes the unbiased batch variance, as PyTorch and MindSpore do.

    Paddle's kernel normalises with the biased batch variance (right) but also averages that one into
    `_variance`; this adds the missing (1 - momentum) * var / (n - 1) after each training forward.
    """

    def forward(self, x):
        out = super().forward(x)
        if self.training:
            with paddle.no_grad():
                axes = [0, 2, 3, 4]
                n = math.prod(x.shape) // x.shape[1]
                # Not x.var(): it warns about a dtype promotion on every call.
                batch_var = (x - x.mean(axis=axes, keepdim=True)).square().mean(axis=axes)
                self._variance.set_value(self._variance + (1 - self._momentum) * batch_var / max(n - 1, 1))
        return out


def conv3x3x3(in_planes, out_planes, stride=1):
    return nn.Conv3D(in_planes, out_planes, kernel_size=3, stride=stride, padding=1, bias_attr=False)


def conv1x1x1(in_planes, out_planes, stride=1):
    return nn.Conv3D(in_planes, out_planes, kernel_size=1, stride=stride, bias_attr=False)


class BasicBlock(nn.Layer):
    expansion = 1

    def __init__(self, in_planes, planes, stride=1, downsample=None):
        super().__init__()
        self.conv1 = conv3x3x3(in_planes, planes, stride)
        self.bn1 = BatchNorm3D(planes)
        self.relu = nn.ReLU()
        self.conv2 = conv3x3x3(planes, planes)
        self.bn2 = BatchNorm3D(planes)
        self.downsample = downsample

    def forward(self, x):
        residual = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return self.relu(out + residual)


class Bottleneck(nn.Layer):
    expansion = 4

    def __init__(self, in_planes, planes, stride=1, downsample=None):
        super().__init__()
        self.conv1 = conv1x1x1(in_planes, planes)
        self.bn1 = BatchNorm3D(planes)
        self.conv2 = conv3x3x3(planes, planes, stride)
        self.bn2 = BatchNorm3D(planes)
        self.conv3 = conv1x1x1(planes, planes * self.expansion)
        self.bn3 = BatchNorm3D(planes * self.expansion)
        self.relu = nn.ReLU()
        self.downsample = downsample

    def forward(self, x):
        residual = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        return self.relu(out + residual)


class ZeroPadShortcut(nn.Layer):
    """Shortcut 'A': subsample with a 1x1x1 average pool, zero-fill the extra channels."""

    def __init__(self, out_planes, stride):
        super().__init__()
        self.out_planes = out_planes
        self.stride = stride

    def forward(self, x):
        out = F.avg_pool3d(x, kernel_size=1, stride=self.stride)
        zeros = paddle.zeros([out.shape[0], self.out_planes - out.shape[1], *out.shape[2:]], dtype=out.dtype)
        return paddle.concat([out, zeros], axis=1)


def make_layer(block, in_planes, planes, blocks, shortcut_type, stride=1):
    """One stage: `blocks` blocks, the first one changing stride and width. Returns (stage, out_planes)."""
    out_planes = planes * block.expansion
    downsample = None
    if stride != 1 or in_planes != out_planes:
        if shortcut_type == "A":
            downsample = ZeroPadShortcut(out_planes, stride)
        else:
            downsample = nn.Sequential(conv1x1x1(in_planes, out_planes, stride), BatchNorm3D(out_planes))
    layers = [block(in_planes, planes, stride, downsample)]
    layers += [block(out_planes, planes) for _ in range(1, blocks)]
    return nn.Sequential(*layers), out_planes


def torch_default_init(layer):
    """PyTorch's default initialisation of a Linear or Conv3D: weight (kaiming_uniform(a=sqrt(5))) and bias
    uniform in +-1/sqrt(fan_in). Paddle's own defaults start wider: Xavier Linear weights (2.4x the torch
    spread for the demo's head), He-normal conv weights (2.4x) and zero biases."""
    fan_in = layer.weight.shape[0] if isinstance(layer, nn.Linear) else math.prod(layer.weight.shape[1:])
    bound = 1 / math.sqrt(fan_in)
    for param in (layer.weight, layer.bias):
        if param is not None:
            nn.initializer.Uniform(-bound, bound)(param)


def init_weights(model):
    """kenshohara's initialisation: He normal (fan out) convs, unit BatchNorms, PyTorch's default fc."""
    for m in model.sublayers():
        if isinstance(m, nn.Conv3D):
            # Paddle 3.0's KaimingNormal has no mode argument: pass the fan-out as its fan.
            fan_out = m.weight.shape[0] * math.prod(m.weight.shape[2:])
            nn.initializer.KaimingNormal(fan_in=fan_out, nonlinearity="relu")(m.weight)
        elif isinstance(m, nn.BatchNorm3D):
            nn.initializer.Constant(1.0)(m.weight)
            nn.initializer.Constant(0.0)(m.bias)
        elif isinstance(m, nn.Linear):
            torch_default_init(m)


class ResNet(nn.Layer):

    def __init__(self, block, layers, n_classes=400, n_input_channels=3, widen_factor=1.0, conv1_t_size=7,
                 conv1_t_stride=1, no_max_pool=False, shortcut_type="B"):
        super().__init__()
        planes = [scaled(p, widen_factor) for p in RESNET_INPLANES]
        self.no_max_pool = no_max_pool
        self.conv1 = nn.Conv3D(n_input_channels, planes[0], kernel_size=(conv1_t_size, 7, 7),
                               stride=(conv1_t_stride, 2, 2), padding=(conv1_t_size // 2, 3, 3), bias_attr=False)
        self.bn1 = BatchNorm3D(planes[0])
        self.relu = nn.ReLU()
        self.maxpool = nn.MaxPool3D(kernel_size=3, stride=2, padding=1)  # pads with -inf, as PyTorch
        self.layer1, in_planes = make_layer(block, planes[0], planes[0], layers[0], shortcut_type)
        self.layer2, in_planes = make_layer(block, in_planes, planes[1], layers[1], shortcut_type, stride=2)
        self.layer3, in_planes = make_layer(block, in_planes, planes[2], layers[2], shortcut_type, stride=2)
        self.layer4, in_planes = make_layer(block, in_planes, planes[3], layers[3], shortcut_type, stride=2)
        self.avgpool = nn.AdaptiveAvgPool3D(1)
        self.fc = nn.Linear(in_planes, n_classes)
        init_weights(self)

    def forward(self, x):
        x = self.relu(self.bn1(self.conv1(x)))
        if not self.no_max_pool:
            x = self.maxpool(x)
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
        return self.fc(paddle.flatten(self.avgpool(x), 1))


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
