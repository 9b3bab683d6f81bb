"""I3D ResNet-50 (with optional non-local blocks), as MMAction2's ResNet3d + I3DHead and mmcv's NonLocal3d
(core/archs/i3d_resnet.py lists the tree, the references and their commits).

Same module tree as MMAction2's released I3D-R50 / I3D-R50-NL without `backbone.` / `cls_head.`
(`conv1.conv`, `layer1.0.downsample.bn`, `layer2.1.non_local_block.g.0.conv`, `fc_cls`), so they load as they are.
"""
import math

import paddle
import paddle.nn.functional as F
from paddle import nn

from core.archs import scaled
from core.archs.i3d_resnet import CONV1, NON_LOCAL_POOL, POOL1, POOL2, STEM, features, non_local_convs, stages
from .resnet import BatchNorm3D


class ConvModule(nn.Layer):
    """mmcv's ConvModule as ResNet3d uses it: conv without bias, BatchNorm `bn`, then a ReLU if `relu`."""

    def __init__(self, conv_in, conv_out, kernel, stride=1, padding=0, relu=True):
        super().__init__()
        self.conv = nn.Conv3D(conv_in, conv_out, kernel, stride, padding, bias_attr=False)
        self.bn = BatchNorm3D(conv_out)  # Paddle's defaults: eps 1e-5, momentum 0.9 (PyTorch's 0.1)
        self.relu = relu

    def forward(self, x):
        x = self.bn(self.conv(x))
        return F.relu(x) if self.relu else x


class Projection(nn.Layer):
    """mmcv's ConvModule without norm or activation: a biased 1x1x1 conv named `conv`."""

    def __init__(self, conv_in, conv_out):
        super().__init__()
        self.conv = nn.Conv3D(conv_in, conv_out, 1)

    def forward(self, x):
        return self.conv(x)


class NonLocal3d(nn.Layer):
    """Embedded Gaussian, sub-sampled g and phi, no 1/sqrt(C) scale; conv_out's BatchNorm added to the input."""

    def __init__(self, channels):
        super().__init__()
        projections, (out_in, out_out) = non_local_convs(channels)
        built = {name: Projection(conv_in, conv_out) for name, conv_in, conv_out in projections}
        self.theta = built["theta"]
        self.phi = nn.Sequential(built["phi.0"], nn.MaxPool3D(NON_LOCAL_POOL))
        self.g = nn.Sequential(built["g.0"], nn.MaxPool3D(NON_LOCAL_POOL))
        self.conv_out = ConvModule(out_in, out_out, 1, relu=False)

    def forward(self, x):
        n, _, t, h, w = x.shape
        theta = self.theta(x).flatten(2).transpose([0, 2, 1])  # (N, THW, C')
        phi = self.phi(x).flatten(2)  # (N, C', THW / 4)
        g = self.g(x).flatten(2).transpose([0, 2, 1])  # (N, THW / 4, C')
        y = paddle.matmul(F.softmax(paddle.matmul(theta, phi), axis=-1), g)
        return x + self.conv_out(y.transpose([0, 2, 1]).reshape([n, -1, t, h, w]))


class Bottleneck(nn.Layer):
    """conv1 -> conv2 -> conv3 (+ shortcut) -> ReLU -> non-local block (if any)."""

    def __init__(self, convs, downsample, non_local_channels):
        super().__init__()
        for name, conv_in, conv_out, kernel, stride, padding in convs:
            setattr(self, name, ConvModule(conv_in, conv_out, kernel, stride, padding, relu=name != "conv3"))
        self.downsample = None
        if downsample:
            conv_in, conv_out, stride = downsample
            self.downsample = ConvModule(conv_in, conv_out, 1, (1, stride, stride), relu=False)
        self.non_local_block = NonLocal3d(non_local_channels) if non_local_channels else None

    def forward(self, x):
        identity = x if self.downsample is None else self.downsample(x)
        out = F.relu(self.conv3(self.conv2(self.conv1(x))) + identity)
        return out if self.non_local_block is None else self.non_local_block(out)


def init_weights(model):
    """MMAction2's: He normal (fan out) convs and unit BatchNorms (ResNet3d), the non-local blocks as mmcv starts
    them (projections normal 0.01, conv_out's BatchNorm zero: each block starts as the identity), fc_cls normal
    0.01 (I3DHead)."""
    for m in model.sublayers():
        if isinstance(m, nn.Conv3D):
            # Paddle 3.0's KaimingNormal has no mode argument: pass the fan-out as its fan.
            fan_out = m.weight.shape[0] * math.prod(m.weight.shape[2:])
            nn.initializer.KaimingNormal(fan_in=fan_out, nonlinearity="relu")(m.weight)
        elif isinstance(m, nn.BatchNorm3D):
            nn.initializer.Constant(1.0)(m.weight)
            nn.initializer.Constant(0.0)(m.bias)
    for m in model.sublayers():
        if isinstance(m, NonLocal3d):
            for projection in (m.theta, m.phi[0], m.g[0]):
                nn.initializer.Normal(0.0, 0.01)(projection.conv.weight)
                nn.initializer.Constant(0.0)(projection.conv.bias)
            nn.initializer.Constant(0.0)(m.conv_out.bn.weight)
    nn.initializer.Normal(0.0, 0.01)(model.fc_cls.weight)
    nn.initializer.Constant(0.0)(model.fc_cls.bias)


class I3DResNet(nn.Layer):

    def __init__(self, spec, n_classes, n_input_channels, widen_factor, inflate_mode, non_local, dropout):
        super().__init__()
        self.conv1 = ConvModule(n_input_channels, scaled(STEM, widen_factor), *CONV1)
        self.maxpool = nn.MaxPool3D(*POOL1)  # pads with -inf, as PyTorch
        self.pool2 = nn.MaxPool3D(*POOL2)
        for stage, blocks in stages(widen_factor, inflate_mode, non_local):
            self.add_sublayer(f"layer{stage}", nn.Sequential(*[Bottleneck(*block) for block in blocks]))
        self.avg_pool = nn.AdaptiveAvgPool3D(1)
        self.dropout = nn.Dropout(dropout)
        self.fc_cls = nn.Linear(features(widen_factor), n_classes)
        init_weights(self)

    def forward(self, x):
        x = self.pool2(self.layer1(self.maxpool(self.conv1(x))))
        x = self.layer4(self.layer3(self.layer2(x)))
        return self.fc_cls(self.dropout(paddle.flatten(self.avg_pool(x), 1)))


def build(spec, **kwargs):
    return I3DResNet(spec, **kwargs)
