"""3D ResNets and R(2+1)D in one class, as kenshohara/3D-ResNets-PyTorch models/resnet.py and
models/resnet2p1d.py (core/archs/resnet.py lists every conv; torchvision's VideoResNet serves both the same way).

Same module tree (hence the same parameter names) as the community checkpoints, so `r3d50_K_200ep.pth`
and `r2p1d18_K_200ep.pth` load as they are.
"""
from mindspore import nn, ops
from mindspore.common.initializer import HeNormal, One, Zero, initializer

from core.archs import scaled
from core.archs.resnet import EXPANSION, INPLANES, block_convs, needs_downsample, stages, stem_convs

# MindSpore's momentum weighs the old running value: 1 - PyTorch's default 0.1.
BN_MOMENTUM = 0.9


def conv3d(conv_in, conv_out, kernel, stride=1, padding=(0, 0, 0)):
    # MindSpore pads (front, back, top, bottom, left, right).
    return nn.Conv3d(conv_in, conv_out, kernel, stride, pad_mode="pad",
                     padding=tuple(p for p in padding for _ in range(2)), has_bias=False)


def conv_bn(owner, suffix, conv_in, conv_out, kernel, stride, padding):
    """Add conv<suffix> and bn<suffix> to `owner`; return their names."""
    # setattr (not insert_child_to_cell) so that the parameters' own names carry the cell's path too.
    setattr(owner, f"conv{suffix}", conv3d(conv_in, conv_out, kernel, stride, padding))
    setattr(owner, f"bn{suffix}", nn.BatchNorm3d(conv_out, momentum=BN_MOMENTUM))
    return f"conv{suffix}", f"bn{suffix}"


class Block(nn.Cell):
    """A basic or bottleneck block: conv-BN pairs with ReLUs between them, the shortcut added before the last ReLU."""

    def __init__(self, convs, downsample=None):
        super().__init__()
        self.pairs = [conv_bn(self, *conv) for conv in convs]
        self.relu = nn.ReLU()
        self.downsample = downsample

    def construct(self, x):
        residual = x if self.downsample is None else self.downsample(x)
        out = x
        for index, (conv, bn) in enumerate(self.pairs):
            out = getattr(self, bn)(getattr(self, conv)(out))
            if index < len(self.pairs) - 1:
                out = self.relu(out)
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


def shortcut(shortcut_type, in_planes, out_planes, stride):
    """A block's downsample where its stride or width changes (else None): zero-padding (shortcut_type 'A')
    or a 1x1x1 conv with its BatchNorm ('B')."""
    if not needs_downsample(in_planes, out_planes, stride):
        return None
    if shortcut_type == "A":
        return ZeroPadShortcut(out_planes, stride)
    return nn.SequentialCell(conv3d(in_planes, out_planes, 1, stride),
                            nn.BatchNorm3d(out_planes, momentum=BN_MOMENTUM))


def make_layer(block, is_2plus1d, in_planes, planes, n_blocks, shortcut_type, stride):
    """One stage: `n_blocks` blocks, the first one changing stride and width. Returns (stage, out_planes)."""
    out_planes = planes * EXPANSION[block]
    blocks = [Block(block_convs(block, is_2plus1d, in_planes, planes, stride),
                    shortcut(shortcut_type, in_planes, out_planes, stride))]
    blocks += [Block(block_convs(block, is_2plus1d, out_planes, planes, 1)) for _ in range(1, n_blocks)]
    return nn.SequentialCell(blocks), out_planes


def init_weights(model):
    """kenshohara's initialisation: He normal (fan out) convs, unit BatchNorms."""
    for _, m in model.cells_and_names():
        if isinstance(m, nn.Conv3d):
            m.weight.set_data(initializer(HeNormal(mode="fan_out", nonlinearity="relu"), m.weight.shape))
        elif isinstance(m, nn.BatchNorm3d):
            m.bn2d.gamma.set_data(initializer(One(), m.bn2d.gamma.shape))
            m.bn2d.beta.set_data(initializer(Zero(), m.bn2d.beta.shape))


class ResNet(nn.Cell):

    def __init__(self, spec, n_classes, n_input_channels, widen_factor, conv1_t_size, conv1_t_stride, no_max_pool,
                 shortcut_type):
        super().__init__()
        block, is_2plus1d = spec.structure["block"], spec.structure["2plus1d"]
        in_planes = scaled(INPLANES[0], widen_factor)
        self.stem = [conv_bn(self, *conv) for conv in stem_convs(is_2plus1d, n_input_channels, in_planes,
                                                                 conv1_t_size, conv1_t_stride)]
        self.relu = nn.ReLU()
        self.no_max_pool = no_max_pool
        # pad_mode "pad" pads with -inf, as PyTorch.
        self.maxpool = nn.MaxPool3d(kernel_size=3, stride=2, pad_mode="pad", padding=1)
        for stage, planes, n_blocks, stride in stages(spec.structure["layers"], widen_factor):
            layer, in_planes = make_layer(block, is_2plus1d, in_planes, planes, n_blocks, shortcut_type, stride)
            setattr(self, f"layer{stage}", layer)
        self.avgpool = nn.AdaptiveAvgPool3d(1)
        self.fc = nn.Dense(in_planes, n_classes)
        init_weights(self)

    def construct(self, x):
        for conv, bn in self.stem:
            x = self.relu(getattr(self, bn)(getattr(self, conv)(x)))
        if not self.no_max_pool:
            x = self.maxpool(x)
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
        return self.fc(ops.flatten(self.avgpool(x), start_dim=1))


def build(spec, **kwargs):
    return ResNet(spec, **kwargs)
