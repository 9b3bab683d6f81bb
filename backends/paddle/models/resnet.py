"""3D ResNets and R(2+1)D in one class, as kenshohara/3D-ResNets-PyTorch models/resnet.py and
models/resnet2p1d.py (core/archs/resnet.py lists every conv; torchvision's VideoResNet serves both the same way).

Same module tree (hence the same parameter names) as the community checkpoints and the PaddlePaddle port's
`.pdparams`, so they load as they are.
"""
import math

import paddle
import paddle.nn.functional as F
from paddle import nn

from core.archs import scaled
from core.archs.resnet import EXPANSION, INPLANES, block_convs, needs_downsample, stages, stem_convs


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


def conv_bn(owner, suffix, conv_in, conv_out, kernel, stride, padding):
    """Add conv<suffix> and bn<suffix> to `owner`; return their names."""
    owner.add_sublayer(f"conv{suffix}", nn.Conv3D(conv_in, conv_out, kernel, stride, padding, bias_attr=False))
    owner.add_sublayer(f"bn{suffix}", BatchNorm3D(conv_out))
    return f"conv{suffix}", f"bn{suffix}"


class Block(nn.Layer):
    """A basic or bottleneck block: conv-BN pairs with ReLUs between them, the shortcut added before the last ReLU."""

    def __init__(self, convs, downsample=None):
        super().__init__()
        self.pairs = [conv_bn(self, *conv) for conv in convs]
        self.relu = nn.ReLU()
        self.downsample = downsample

    def forward(self, x):
        residual = x if self.downsample is None else self.downsample(x)
        out = x
        for index, (conv, bn) in enumerate(self.pairs):
            out = getattr(self, bn)(getattr(self, conv)(out))
            if index < len(self.pairs) - 1:
                out = self.relu(out)
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


def shortcut(shortcut_type, in_planes, out_planes, stride):
    """A block's downsample where its stride or width changes (else None): zero-padding (shortcut_type 'A')
    or a 1x1x1 conv with its BatchNorm ('B')."""
    if not needs_downsample(in_planes, out_planes, stride):
        return None
    if shortcut_type == "A":
        return ZeroPadShortcut(out_planes, stride)
    return nn.Sequential(nn.Conv3D(in_planes, out_planes, 1, stride, bias_attr=False), BatchNorm3D(out_planes))


def make_layer(block, is_2plus1d, in_planes, planes, n_blocks, shortcut_type, stride):
    """One stage: `n_blocks` blocks, the first one changing stride and width. Returns (stage, out_planes)."""
    out_planes = planes * EXPANSION[block]
    blocks = [Block(block_convs(block, is_2plus1d, in_planes, planes, stride),
                    shortcut(shortcut_type, in_planes, out_planes, stride))]
    blocks += [Block(block_convs(block, is_2plus1d, out_planes, planes, 1)) for _ in range(1, n_blocks)]
    return nn.Sequential(*blocks), out_planes


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

    def __init__(self, spec, n_classes, n_input_channels, widen_factor, conv1_t_size, conv1_t_stride, no_max_pool,
                 shortcut_type):
        super().__init__()
        block, is_2plus1d = spec.structure["block"], spec.structure["2plus1d"]
        in_planes = scaled(INPLANES[0], widen_factor)
        self.stem = [conv_bn(self, *conv) for conv in stem_convs(is_2plus1d, n_input_channels, in_planes,
                                                                 conv1_t_size, conv1_t_stride)]
        self.relu = nn.ReLU()
        self.no_max_pool = no_max_pool
        self.maxpool = nn.MaxPool3D(kernel_size=3, stride=2, padding=1)  # pads with -inf, as PyTorch
        for stage, planes, n_blocks, stride in stages(spec.structure["layers"], widen_factor):
            layer, in_planes = make_layer(block, is_2plus1d, in_planes, planes, n_blocks, shortcut_type, stride)
            self.add_sublayer(f"layer{stage}", layer)
        self.avgpool = nn.AdaptiveAvgPool3D(1)
        self.fc = nn.Linear(in_planes, n_classes)
        init_weights(self)

    def forward(self, x):
        for conv, bn in self.stem:
            x = self.relu(getattr(self, bn)(getattr(self, conv)(x)))
        if not self.no_max_pool:
            x = self.maxpool(x)
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
        return self.fc(paddle.flatten(self.avgpool(x), 1))


def build(spec, **kwargs):
    return ResNet(spec, **kwargs)
