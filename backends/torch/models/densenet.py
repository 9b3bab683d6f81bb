"""3D DenseNet-BC, as kenshohara/3D-ResNets-PyTorch models/densenet.py of his CVPR2018 branch
(core/archs/densenet.py lists every layer; his `norm.1` / `conv.1` are containers `norm` / `conv` here)."""
import torch
import torch.nn.functional as F
from torch import nn

from backends.torch.models.resnet import init_weights
from core.archs import scaled
from core.archs.densenet import BN_SIZE, INIT_FEATURES, blocks


class DenseLayer(nn.Module):
    """norm.1-relu-conv.1 (1x1x1), norm.2-relu-conv.2 (3x3x3); the output is the input with the new features."""

    def __init__(self, in_channels, growth):
        super().__init__()
        self.norm = nn.ModuleDict({"1": nn.BatchNorm3d(in_channels), "2": nn.BatchNorm3d(BN_SIZE * growth)})
        self.conv = nn.ModuleDict({"1": nn.Conv3d(in_channels, BN_SIZE * growth, 1, bias=False),
                                   "2": nn.Conv3d(BN_SIZE * growth, growth, 3, padding=1, bias=False)})

    def forward(self, x):
        out = self.conv["1"](F.relu(self.norm["1"](x)))
        out = self.conv["2"](F.relu(self.norm["2"](out)))
        return torch.cat([x, out], 1)


class DenseBlock(nn.Module):
    """denselayer1, denselayer2, ... in order."""

    def __init__(self, layers, growth):
        super().__init__()
        for name, in_channels in layers:
            self.add_module(name, DenseLayer(in_channels, growth))

    def forward(self, x):
        for layer in self.children():
            x = layer(x)
        return x


class Transition(nn.Module):
    """norm-relu-conv (1x1x1), average pooling 2, stride 2."""

    def __init__(self, in_channels, out_channels):
        super().__init__()
        self.norm = nn.BatchNorm3d(in_channels)
        self.conv = nn.Conv3d(in_channels, out_channels, 1, bias=False)
        self.pool = nn.AvgPool3d(kernel_size=2, stride=2)

    def forward(self, x):
        return self.pool(self.conv(F.relu(self.norm(x))))


class DenseNet(nn.Module):

    def __init__(self, spec, n_classes, n_input_channels, widen_factor, conv1_t_size, conv1_t_stride, no_max_pool):
        super().__init__()
        init = scaled(INIT_FEATURES, widen_factor)
        self.features = nn.Module()
        self.features.add_module("conv0", nn.Conv3d(n_input_channels, init, (conv1_t_size, 7, 7),
                                                    (conv1_t_stride, 2, 2), (conv1_t_size // 2, 3, 3), bias=False))
        self.features.add_module("norm0", nn.BatchNorm3d(init))
        self.features.add_module("pool0", nn.MaxPool3d(kernel_size=3, stride=2, padding=1))
        self.no_max_pool = no_max_pool
        dense_blocks, growth, features = blocks(spec.structure["block_config"], widen_factor)
        self.stages = []
        for index, layers, transition in dense_blocks:
            self.features.add_module(f"denseblock{index}", DenseBlock(layers, growth))
            self.stages.append(f"denseblock{index}")
            if transition:
                self.features.add_module(f"transition{index}", Transition(*transition))
                self.stages.append(f"transition{index}")
        self.features.add_module("norm5", nn.BatchNorm3d(features))
        self.avgpool = nn.AdaptiveAvgPool3d(1)
        self.classifier = nn.Linear(features, n_classes)
        init_weights(self)

    def forward(self, x):
        f = self.features
        x = F.relu(f.norm0(f.conv0(x)))
        if not self.no_max_pool:
            x = f.pool0(x)
        for stage in self.stages:
            x = getattr(f, stage)(x)
        x = F.relu(f.norm5(x))
        return self.classifier(torch.flatten(self.avgpool(x), 1))


def build(spec, **kwargs):
    return DenseNet(spec, **kwargs)
