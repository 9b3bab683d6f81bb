"""TSN, as yjxiong/tsn-pytorch models.py: a 2D backbone (torchvision's ResNet-50 or his BN-Inception) on every
frame, dropout, `new_fc`, logits averaged over the frames (core/archs/tsn.py lists the trees and the reference).

Same module tree as his checkpoints (`base_model.*`, `new_fc.*`), so they load as they are.
"""
import math

import paddle
from paddle import nn

from core.archs import scaled
from core.archs.resnet import EXPANSION, INPLANES, stages
from core.archs.tsn import (BLOCKS, BN_EPS, BN_MOMENTUM, NEW_FC_STD, STEM_POOL, bninception_convs, inception_branches,
                            resnet_block_convs)


class BatchNorm2D(nn.BatchNorm2D):
    """nn.BatchNorm2D (Paddle's momentum weighs the old value) whose running variance takes the unbiased batch
    variance, as PyTorch and MindSpore do (backends/paddle/models/resnet.py BatchNorm3D says why)."""

    def __init__(self, channels):
        super().__init__(channels, momentum=1 - BN_MOMENTUM, epsilon=BN_EPS)

    def forward(self, x):
        out = super().forward(x)
        if self.training:
            with paddle.no_grad():
                axes = [0, 2, 3]
                n = math.prod(x.shape) // x.shape[1]
                batch_var = (x - x.mean(axis=axes, keepdim=True)).square().mean(axis=axes)
                self._variance.set_value(self._variance + (1 - self._momentum) * batch_var / max(n - 1, 1))
        return out


class Bottleneck(nn.Layer):
    """torchvision's Bottleneck: 1x1, 3x3 (the stride), 1x1 to 4x, the shortcut added before the last ReLU."""

    def __init__(self, in_planes, planes, stride, downsample):
        super().__init__()
        for suffix, conv_in, conv_out, kernel, conv_stride, padding in resnet_block_convs(in_planes, planes, stride):
            self.add_sublayer(f"conv{suffix}", nn.Conv2D(conv_in, conv_out, kernel, conv_stride, padding,
                                                         bias_attr=False))
            self.add_sublayer(f"bn{suffix}", BatchNorm2D(conv_out))
        self.relu = nn.ReLU()
        self.downsample = downsample

    def forward(self, x):
        residual = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.relu(self.bn2(self.conv2(out)))
        return self.relu(self.bn3(self.conv3(out)) + residual)


class ResNet50(nn.Layer):
    """torchvision's resnet50 up to its pooled features (its fc is his dropout)."""

    def __init__(self, n_input_channels, widen_factor, layers):
        super().__init__()
        in_planes = scaled(INPLANES[0], widen_factor)
        self.conv1 = nn.Conv2D(n_input_channels, in_planes, 7, 2, 3, bias_attr=False)
        self.bn1 = BatchNorm2D(in_planes)
        self.relu = nn.ReLU()
        self.maxpool = nn.MaxPool2D(3, 2, 1)
        for stage, planes, n_blocks, stride in stages(layers, widen_factor):
            out_planes = planes * EXPANSION["bottleneck"]
            downsample = nn.Sequential(nn.Conv2D(in_planes, out_planes, 1, stride, bias_attr=False),
                                       BatchNorm2D(out_planes))
            blocks = [Bottleneck(in_planes, planes, stride, downsample)]
            blocks += [Bottleneck(out_planes, planes, 1, None) for _ in range(1, n_blocks)]
            self.add_sublayer(f"layer{stage}", nn.Sequential(*blocks))
            in_planes = out_planes
        self.out_channels = in_planes

    def forward(self, x):
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        return self.layer4(self.layer3(self.layer2(self.layer1(x))))


class BNInception(nn.Layer):
    """His BN-Inception: every conv (with bias) followed by `<conv>_bn` and a ReLU; Caffe's ceil_mode pooling
    (average pools count the padding: exclusive=False)."""

    def __init__(self, n_input_channels, widen_factor):
        super().__init__()
        convs, self.out_channels = bninception_convs(n_input_channels, widen_factor)
        for name, conv_in, conv_out, kernel, stride, padding in convs:
            self.add_sublayer(name, nn.Conv2D(conv_in, conv_out, kernel, stride, padding))
            self.add_sublayer(f"{name}_bn", BatchNorm2D(conv_out))
        self.relu = nn.ReLU()
        self.stem_pool = nn.MaxPool2D(*STEM_POOL, ceil_mode=True)
        self.pools = {"ave": nn.AvgPool2D(3, 1, 1, ceil_mode=True, exclusive=False),
                      "max": nn.MaxPool2D(3, 1, 1, ceil_mode=True), "max_s2": nn.MaxPool2D(3, 2, 0, ceil_mode=True)}
        self.blocks = [inception_branches(block) for block in BLOCKS]

    def unit(self, name, x):
        return self.relu(getattr(self, f"{name}_bn")(getattr(self, name)(x)))

    def forward(self, x):
        x = self.stem_pool(self.unit("conv1_7x7_s2", x))
        x = self.stem_pool(self.unit("conv2_3x3", self.unit("conv2_3x3_reduce", x)))
        for chains, pool, proj in self.blocks:
            out = []
            for chain in chains:
                y = x
                for name in chain:
                    y = self.unit(name, y)
                out.append(y)
            pooled = self.pools[pool](x)
            out.append(pooled if proj is None else self.unit(proj, pooled))
            x = paddle.concat(out, axis=1)
        return x


class TSN(nn.Layer):

    def __init__(self, spec, n_classes, n_input_channels, widen_factor, dropout):
        super().__init__()
        if spec.structure["backbone"] == "resnet":
            self.base_model = ResNet50(n_input_channels, widen_factor, spec.structure["layers"])
        else:
            self.base_model = BNInception(n_input_channels, widen_factor)
        self.dropout = nn.Dropout(dropout)
        self.new_fc = nn.Linear(self.base_model.out_channels, n_classes)
        init_weights(self)

    def forward(self, x):
        _, c, t, h, w = x.shape
        # -1 for the batch: an export with a dynamic batch would otherwise keep the example's n * t.
        frames = self.base_model(x.transpose([0, 2, 1, 3, 4]).reshape([-1, c, h, w]))
        logits = self.new_fc(self.dropout(frames.mean(axis=[2, 3])))
        return logits.reshape([-1, t, logits.shape[-1]]).mean(axis=1)


def init_weights(model):
    """He normal (fan out) convs with zero biases and unit BatchNorms (torchvision's ResNet; his BN-Inception
    is always loaded from ImageNet weights), new_fc N(0, 0.001) with zero bias (his _prepare_tsn)."""
    for m in model.sublayers():
        if isinstance(m, nn.Conv2D):
            fan_out = m.weight.shape[0] * math.prod(m.weight.shape[2:])
            # Paddle 3.0's KaimingNormal has no mode argument: pass the fan-out as its fan.
            nn.initializer.KaimingNormal(fan_in=fan_out, nonlinearity="relu")(m.weight)
            if m.bias is not None:
                nn.initializer.Constant(0.0)(m.bias)
        elif isinstance(m, nn.BatchNorm2D):
            nn.initializer.Constant(1.0)(m.weight)
            nn.initializer.Constant(0.0)(m.bias)
    nn.initializer.Normal(0.0, NEW_FC_STD)(model.new_fc.weight)
    nn.initializer.Constant(0.0)(model.new_fc.bias)


def build(spec, **kwargs):
    return TSN(spec, **kwargs)
