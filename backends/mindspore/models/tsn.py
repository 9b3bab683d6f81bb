"""TSN, as yjxiong/tsn-pytorch models.py: a 2D backbone (torchvision's ResNet-50 or his BN-Inception) on every
frame, dropout, `new_fc`, logits averaged over the frames (core/archs/tsn.py lists the trees and the reference).

Same module tree as his checkpoints (`base_model.*`, `new_fc.*`), so they load as they are.
"""
from mindspore import nn, ops
from mindspore.common.initializer import HeNormal, Normal, One, Zero, initializer

from core.archs import scaled
from core.archs.resnet import EXPANSION, INPLANES, stages
from core.archs.tsn import (BLOCKS, BN_EPS, BN_MOMENTUM, NEW_FC_STD, STEM_POOL, bninception_convs, inception_branches,
                            resnet_block_convs)


class BatchNorm2d(nn.Cell):
    """nn.BatchNorm2d (MindSpore's momentum weighs the old value) kept in `bn2d`, as nn.BatchNorm3d keeps its
    own: the parameters are then spelled as every other BatchNorm here (core.state_dict)."""

    def __init__(self, channels):
        super().__init__()
        self.bn2d = nn.BatchNorm2d(channels, eps=BN_EPS, momentum=1 - BN_MOMENTUM)

    def construct(self, x):
        return self.bn2d(x)


def conv2d(conv_in, conv_out, kernel, stride, padding, bias):
    return nn.Conv2d(conv_in, conv_out, kernel, stride, pad_mode="pad", padding=padding, has_bias=bias)


class Bottleneck(nn.Cell):
    """torchvision's Bottleneck: 1x1, 3x3 (the stride), 1x1 to 4x, the shortcut added before the last ReLU."""

    def __init__(self, in_planes, planes, stride, downsample):
        super().__init__()
        for suffix, conv_in, conv_out, kernel, conv_stride, padding in resnet_block_convs(in_planes, planes, stride):
            setattr(self, f"conv{suffix}", conv2d(conv_in, conv_out, kernel, conv_stride, padding, False))
            setattr(self, f"bn{suffix}", BatchNorm2d(conv_out))
        self.relu = nn.ReLU()
        self.downsample = downsample

    def construct(self, x):
        residual = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.relu(self.bn2(self.conv2(out)))
        return self.relu(self.bn3(self.conv3(out)) + residual)


class ResNet50(nn.Cell):
    """torchvision's resnet50 up to its pooled features (its fc is his dropout)."""

    def __init__(self, n_input_channels, widen_factor, layers):
        super().__init__()
        in_planes = scaled(INPLANES[0], widen_factor)
        self.conv1 = conv2d(n_input_channels, in_planes, 7, 2, 3, False)
        self.bn1 = BatchNorm2d(in_planes)
        self.relu = nn.ReLU()
        for stage, planes, n_blocks, stride in stages(layers, widen_factor):
            out_planes = planes * EXPANSION["bottleneck"]
            downsample = nn.SequentialCell(conv2d(in_planes, out_planes, 1, stride, 0, False), BatchNorm2d(out_planes))
            blocks = [Bottleneck(in_planes, planes, stride, downsample)]
            blocks += [Bottleneck(out_planes, planes, 1, None) for _ in range(1, n_blocks)]
            setattr(self, f"layer{stage}", nn.SequentialCell(blocks))
            in_planes = out_planes
        self.out_channels = in_planes

    def construct(self, x):
        # Functional: with nn.MaxPool2d here, MindIR with a dynamic batch fails to infer the next block's shapes.
        x = ops.max_pool2d(self.relu(self.bn1(self.conv1(x))), 3, 2, 1)
        return self.layer4(self.layer3(self.layer2(self.layer1(x))))


class BNInception(nn.Cell):
    """His BN-Inception: every conv (with bias) followed by `<conv>_bn` and a ReLU; Caffe's ceil_mode pooling
    (average pools count the padding)."""

    def __init__(self, n_input_channels, widen_factor):
        super().__init__()
        convs, self.out_channels = bninception_convs(n_input_channels, widen_factor)
        for name, conv_in, conv_out, kernel, stride, padding in convs:
            setattr(self, name, conv2d(conv_in, conv_out, kernel, stride, padding, True))
            setattr(self, f"{name}_bn", BatchNorm2d(conv_out))
        self.relu = nn.ReLU()
        self.blocks = tuple(inception_branches(block) for block in BLOCKS)

    def unit(self, name, x):
        return self.relu(getattr(self, name + "_bn")(getattr(self, name)(x)))

    def construct(self, x):
        x = stem_pool(self.unit("conv1_7x7_s2", x))
        x = stem_pool(self.unit("conv2_3x3", self.unit("conv2_3x3_reduce", x)))
        for chains, pool, proj in self.blocks:
            out = []
            for chain in chains:
                y = x
                for name in chain:
                    y = self.unit(name, y)
                out.append(y)
            pooled = block_pool(pool, x)
            out.append(pooled if proj is None else self.unit(proj, pooled))
            x = ops.cat(out, axis=1)
        return x


def stem_pool(x):
    kernel, stride, padding = STEM_POOL
    return ops.max_pool2d(x, kernel, stride, padding, ceil_mode=True)


def block_pool(kind, x):
    """Caffe's ceil_mode pools; the average counts the padding."""
    if kind == "ave":
        return ops.avg_pool2d(x, 3, 1, 1, ceil_mode=True, count_include_pad=True)
    if kind == "max":
        return ops.max_pool2d(x, 3, 1, 1, ceil_mode=True)
    return ops.max_pool2d(x, 3, 2, 0, ceil_mode=True)


class TSN(nn.Cell):

    def __init__(self, spec, n_classes, n_input_channels, widen_factor, dropout):
        super().__init__()
        if spec.structure["backbone"] == "resnet":
            self.base_model = ResNet50(n_input_channels, widen_factor, spec.structure["layers"])
        else:
            self.base_model = BNInception(n_input_channels, widen_factor)
        self.dropout = nn.Dropout(p=dropout)
        self.new_fc = nn.Dense(self.base_model.out_channels, n_classes)
        init_weights(self)

    def construct(self, x):
        _, c, t, h, w = x.shape
        # -1 for the batch: an export with a dynamic batch would otherwise keep the example's n * t.
        frames = self.base_model(x.transpose(0, 2, 1, 3, 4).reshape(-1, c, h, w))
        logits = self.new_fc(self.dropout(frames.mean(axis=(2, 3))))
        return logits.reshape(-1, t, logits.shape[-1]).mean(axis=1)


def init_weights(model):
    """He normal (fan out) convs with zero biases and unit BatchNorms (torchvision's ResNet; his BN-Inception
    is always loaded from ImageNet weights), new_fc N(0, 0.001) with zero bias (his _prepare_tsn)."""
    for _, m in model.cells_and_names():
        if isinstance(m, nn.Conv2d):
            m.weight.set_data(initializer(HeNormal(mode="fan_out", nonlinearity="relu"), m.weight.shape))
            if m.bias is not None:
                m.bias.set_data(initializer(Zero(), m.bias.shape))
        elif isinstance(m, BatchNorm2d):
            m.bn2d.gamma.set_data(initializer(One(), m.bn2d.gamma.shape))
            m.bn2d.beta.set_data(initializer(Zero(), m.bn2d.beta.shape))
    model.new_fc.weight.set_data(initializer(Normal(NEW_FC_STD), model.new_fc.weight.shape))
    model.new_fc.bias.set_data(initializer(Zero(), model.new_fc.bias.shape))


def build(spec, **kwargs):
    return TSN(spec, **kwargs)
