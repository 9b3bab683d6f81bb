"""Pre-activation 3D ResNets, as kenshohara/3D-ResNets-PyTorch models/pre_act_resnet.py of his CVPR2018 branch
(core/archs/preresnet.py lists every conv)."""
from mindspore import nn, ops

from backends.mindspore.models.resnet import BN_MOMENTUM, conv3d, init_weights, shortcut
from core.archs import scaled
from core.archs.preresnet import block_convs
from core.archs.resnet import EXPANSION, INPLANES, stages


class PreActivationBlock(nn.Cell):
    """bn-relu-conv pairs (bn<i> before conv<i>), then the shortcut of the block's input added, no ReLU."""

    def __init__(self, convs, downsample=None):
        super().__init__()
        self.pairs = []
        for suffix, conv_in, conv_out, kernel, stride, padding in convs:
            # setattr (not insert_child_to_cell) so that the parameters' own names carry the cell's path too.
            setattr(self, f"bn{suffix}", nn.BatchNorm3d(conv_in, momentum=BN_MOMENTUM))
            setattr(self, f"conv{suffix}", conv3d(conv_in, conv_out, kernel, stride, padding))
            self.pairs.append((f"bn{suffix}", f"conv{suffix}"))
        self.relu = nn.ReLU()
        self.downsample = downsample

    def construct(self, x):
        out = x
        for bn, conv in self.pairs:
            out = getattr(self, conv)(self.relu(getattr(self, bn)(out)))
        return out + (x if self.downsample is None else self.downsample(x))


class PreActivationResNet(nn.Cell):

    def __init__(self, spec, n_classes, n_input_channels, widen_factor, conv1_t_size, conv1_t_stride, no_max_pool,
                 shortcut_type):
        super().__init__()
        block = spec.structure["block"]
        in_planes = scaled(INPLANES[0], widen_factor)
        self.conv1 = conv3d(n_input_channels, in_planes, (conv1_t_size, 7, 7), (conv1_t_stride, 2, 2),
                            (conv1_t_size // 2, 3, 3))
        self.bn1 = nn.BatchNorm3d(in_planes, momentum=BN_MOMENTUM)
        self.relu = nn.ReLU()
        self.no_max_pool = no_max_pool
        # pad_mode "pad" pads with -inf, as PyTorch.
        self.maxpool = nn.MaxPool3d(kernel_size=3, stride=2, pad_mode="pad", padding=1)
        for stage, planes, n_blocks, stride in stages(spec.structure["layers"], widen_factor):
            out_planes, blocks = planes * EXPANSION[block], []
            for index in range(n_blocks):
                block_stride = stride if index == 0 else 1
                downsample = shortcut(shortcut_type, in_planes, out_planes, block_stride)
                blocks.append(PreActivationBlock(block_convs(block, in_planes, planes, block_stride), downsample))
                in_planes = out_planes
            setattr(self, f"layer{stage}", nn.SequentialCell(blocks))
        self.avgpool = nn.AdaptiveAvgPool3d(1)
        self.fc = nn.Dense(in_planes, n_classes)
        init_weights(self)

    def construct(self, x):
        x = self.relu(self.bn1(self.conv1(x)))
        if not self.no_max_pool:
            x = self.maxpool(x)
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
        return self.fc(ops.flatten(self.avgpool(x), start_dim=1))


def build(spec, **kwargs):
    return PreActivationResNet(spec, **kwargs)
