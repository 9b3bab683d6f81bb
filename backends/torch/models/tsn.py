"""TSN, as yjxiong/tsn-pytorch models.py: a 2D backbone (torchvision's ResNet-50 or his BN-Inception) on every
frame, dropout, `new_fc`, logits averaged over the frames (core/archs/tsn.py lists the trees and the reference).

Same module tree as his checkpoints (`base_model.*`, `new_fc.*`), so they load as they are.
"""
import torch
from torch import nn

from core.archs import scaled
from core.archs.resnet import EXPANSION, INPLANES, stages
from core.archs.tsn import (BLOCKS, BN_EPS, BN_MOMENTUM, NEW_FC_STD, STEM_POOL, bninception_convs, inception_branches,
                            resnet_block_convs)


def batchnorm(channels):
    return nn.BatchNorm2d(channels, eps=BN_EPS, momentum=BN_MOMENTUM)


class Bottleneck(nn.Module):
    """torchvision's Bottleneck: 1x1, 3x3 (the stride), 1x1 to 4x, the shortcut added before the last ReLU."""

    def __init__(self, in_planes, planes, stride, downsample):
        super().__init__()
        for suffix, conv_in, conv_out, kernel, conv_stride, padding in resnet_block_convs(in_planes, planes, stride):
            setattr(self, f"conv{suffix}", nn.Conv2d(conv_in, conv_out, kernel, conv_stride, padding, bias=False))
            setattr(self, f"bn{suffix}", batchnorm(conv_out))
        self.relu = nn.ReLU()
        self.downsample = downsample

    def forward(self, x):
        residual = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.relu(self.bn2(self.conv2(out)))
        return self.relu(self.bn3(self.conv3(out)) + residual)


class ResNet50(nn.Module):
    """torchvision's resnet50 up to its pooled features (its fc is his dropout)."""

    def __init__(self, n_input_channels, widen_factor, layers):
        super().__init__()
        in_planes = scaled(INPLANES[0], widen_factor)
        self.conv1 = nn.Conv2d(n_input_channels, in_planes, 7, 2, 3, bias=False)
        self.bn1 = batchnorm(in_planes)
        self.relu = nn.ReLU()
        self.maxpool = nn.MaxPool2d(3, 2, 1)
        for stage, planes, n_blocks, stride in stages(layers, widen_factor):
            out_planes = planes * EXPANSION["bottleneck"]
            downsample = nn.Sequential(nn.Conv2d(in_planes, out_planes, 1, stride, bias=False), batchnorm(out_planes))
            blocks = [Bottleneck(in_planes, planes, stride, downsample)]
            blocks += [Bottleneck(out_planes, planes, 1, None) for _ in range(1, n_blocks)]
            setattr(self, f"layer{stage}", nn.Sequential(*blocks))
            in_planes = out_planes
        self.out_channels = in_planes

    def forward(self, x):
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        return self.layer4(self.layer3(self.layer2(self.layer1(x))))


class BNInception(nn.Module):
    """His BN-Inception: every conv (with bias) followed by `<conv>_bn` and a ReLU; Caffe's ceil_mode pooling."""

    def __init__(self, n_input_channels, widen_factor):
        super().__init__()
        convs, self.out_channels = bninception_convs(n_input_channels, widen_factor)
        for name, conv_in, conv_out, kernel, stride, padding in convs:
            setattr(self, name, nn.Conv2d(conv_in, conv_out, kernel, stride, padding))
            setattr(self, f"{name}_bn", batchnorm(conv_out))
        self.relu = nn.ReLU()
        self.stem_pool = nn.MaxPool2d(*STEM_POOL, ceil_mode=True)
        self.pools = {"ave": nn.AvgPool2d(3, 1, 1, ceil_mode=True), "max": nn.MaxPool2d(3, 1, 1, ceil_mode=True),
                      "max_s2": nn.MaxPool2d(3, 2, 0, ceil_mode=True)}
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
            x = torch.cat(out, dim=1)
        return x


class TSN(nn.Module):

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
        frames = self.base_model(x.transpose(1, 2).reshape(-1, c, h, w))
        logits = self.new_fc(self.dropout(frames.mean(dim=(2, 3))))
        return logits.view(-1, t, logits.shape[-1]).mean(dim=1)


def init_weights(model):
    """He normal (fan out) convs with zero biases and unit BatchNorms (torchvision's ResNet; his BN-Inception
    is always loaded from ImageNet weights), new_fc N(0, 0.001) with zero bias (his _prepare_tsn)."""
    for m in model.modules():
        if isinstance(m, nn.Conv2d):
            nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, nn.BatchNorm2d):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)
    nn.init.normal_(model.new_fc.weight, 0, NEW_FC_STD)
    nn.init.zeros_(model.new_fc.bias)


def build(spec, **kwargs):
    return TSN(spec, **kwargs)
