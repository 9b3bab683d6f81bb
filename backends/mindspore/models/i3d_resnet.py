"""I3D ResNet-50 (with optional non-local blocks), as MMAction2's ResNet3d + I3DHead and mmcv's NonLocal3d
(core/archs/i3d_resnet.py lists the tree, the references and their commits).

Same module tree as MMAction2's released I3D-R50 / I3D-R50-NL without `backbone.` / `cls_head.`
(`conv1.conv`, `layer1.0.downsample.bn`, `layer2.1.non_local_block.g.0.conv`, `fc_cls`), so they load as they are.
"""
from mindspore import nn, ops
from mindspore.common.initializer import HeNormal, Normal, One, Zero, initializer

from backends.mindspore.models.resnet import BN_MOMENTUM
from core.archs import scaled
from core.archs.i3d_resnet import CONV1, NON_LOCAL_POOL, POOL1, POOL2, STEM, features, non_local_convs, stages


def conv3d(conv_in, conv_out, kernel, stride=1, padding=(0, 0, 0), bias=False):
    # MindSpore pads (front, back, top, bottom, left, right).
    padding = (padding,) * 3 if isinstance(padding, int) else padding
    return nn.Conv3d(conv_in, conv_out, kernel, stride, pad_mode="pad",
                     padding=tuple(p for p in padding for _ in range(2)), has_bias=bias)


def max_pool(kernel, stride, padding=(0, 0, 0)):
    # pad_mode "pad" pads with -inf, as PyTorch.
    return nn.MaxPool3d(kernel_size=kernel, stride=stride, pad_mode="pad", padding=padding)


class ConvModule(nn.Cell):
    """mmcv's ConvModule as ResNet3d uses it: conv without bias, BatchNorm `bn`, then a ReLU if `relu`."""

    def __init__(self, conv_in, conv_out, kernel, stride=1, padding=0, relu=True):
        super().__init__()
        self.conv = conv3d(conv_in, conv_out, kernel, stride, padding)
        self.bn = nn.BatchNorm3d(conv_out, momentum=BN_MOMENTUM)  # eps 1e-5 as PyTorch's default
        self.relu = relu

    def construct(self, x):
        x = self.bn(self.conv(x))
        return ops.relu(x) if self.relu else x


class Projection(nn.Cell):
    """mmcv's ConvModule without norm or activation: a biased 1x1x1 conv named `conv`."""

    def __init__(self, conv_in, conv_out):
        super().__init__()
        self.conv = conv3d(conv_in, conv_out, 1, bias=True)

    def construct(self, x):
        return self.conv(x)


class NonLocal3d(nn.Cell):
    """Embedded Gaussian, sub-sampled g and phi, no 1/sqrt(C) scale; conv_out's BatchNorm added to the input."""

    def __init__(self, channels):
        super().__init__()
        projections, (out_in, out_out) = non_local_convs(channels)
        built = {name: Projection(conv_in, conv_out) for name, conv_in, conv_out in projections}
        self.theta = built["theta"]
        self.phi = nn.SequentialCell([built["phi.0"], max_pool(NON_LOCAL_POOL, NON_LOCAL_POOL)])
        self.g = nn.SequentialCell([built["g.0"], max_pool(NON_LOCAL_POOL, NON_LOCAL_POOL)])
        self.conv_out = ConvModule(out_in, out_out, 1, relu=False)

    def construct(self, x):
        n, _, t, h, w = x.shape
        theta = self.theta(x).flatten(start_dim=2).transpose(0, 2, 1)  # (N, THW, C')
        phi = self.phi(x).flatten(start_dim=2)  # (N, C', THW / 4)
        g = self.g(x).flatten(start_dim=2).transpose(0, 2, 1)  # (N, THW / 4, C')
        y = ops.matmul(ops.softmax(ops.matmul(theta, phi), axis=-1), g)
        return x + self.conv_out(y.transpose(0, 2, 1).reshape(n, -1, t, h, w))


class Bottleneck(nn.Cell):
    """conv1 -> conv2 -> conv3 (+ shortcut) -> ReLU -> non-local block (if any)."""

    def __init__(self, convs, downsample, non_local_channels):
        super().__init__()
        # setattr (not insert_child_to_cell) so that the parameters' own names carry the cell's path too.
        for name, conv_in, conv_out, kernel, stride, padding in convs:
            setattr(self, name, ConvModule(conv_in, conv_out, kernel, stride, padding, relu=name != "conv3"))
        self.downsample = None
        if downsample:
            conv_in, conv_out, stride = downsample
            self.downsample = ConvModule(conv_in, conv_out, 1, (1, stride, stride), relu=False)
        self.non_local_block = NonLocal3d(non_local_channels) if non_local_channels else None

    def construct(self, x):
        identity = x if self.downsample is None else self.downsample(x)
        out = ops.relu(self.conv3(self.conv2(self.conv1(x))) + identity)
        return out if self.non_local_block is None else self.non_local_block(out)


def init_weights(model):
    """MMAction2's: He normal (fan out) convs and unit BatchNorms (ResNet3d), the non-local blocks as mmcv starts
    them (projections normal 0.01, conv_out's BatchNorm zero: each block starts as the identity), fc_cls normal
    0.01 (I3DHead)."""
    for _, m in model.cells_and_names():
        if isinstance(m, nn.Conv3d):
            m.weight.set_data(initializer(HeNormal(mode="fan_out", nonlinearity="relu"), m.weight.shape))
        elif isinstance(m, nn.BatchNorm3d):
            m.bn2d.gamma.set_data(initializer(One(), m.bn2d.gamma.shape))
            m.bn2d.beta.set_data(initializer(Zero(), m.bn2d.beta.shape))
    for _, m in model.cells_and_names():
        if isinstance(m, NonLocal3d):
            for projection in (m.theta, m.phi[0], m.g[0]):
                projection.conv.weight.set_data(initializer(Normal(0.01), projection.conv.weight.shape))
                projection.conv.bias.set_data(initializer(Zero(), projection.conv.bias.shape))
            m.conv_out.bn.bn2d.gamma.set_data(initializer(Zero(), m.conv_out.bn.bn2d.gamma.shape))
    model.fc_cls.weight.set_data(initializer(Normal(0.01), model.fc_cls.weight.shape))
    model.fc_cls.bias.set_data(initializer(Zero(), model.fc_cls.bias.shape))


class I3DResNet(nn.Cell):

    def __init__(self, spec, n_classes, n_input_channels, widen_factor, inflate_mode, non_local, dropout):
        super().__init__()
        self.conv1 = ConvModule(n_input_channels, scaled(STEM, widen_factor), *CONV1)
        self.maxpool = max_pool(*POOL1)
        self.pool2 = max_pool(*POOL2)
        for stage, blocks in stages(widen_factor, inflate_mode, non_local):
            setattr(self, f"layer{stage}", nn.SequentialCell([Bottleneck(*block) for block in blocks]))
        self.dropout = nn.Dropout(p=dropout)
        self.fc_cls = nn.Dense(features(widen_factor), n_classes)
        init_weights(self)

    def construct(self, x):
        x = self.pool2(self.layer1(self.maxpool(self.conv1(x))))
        x = self.layer4(self.layer3(self.layer2(x)))
        return self.fc_cls(self.dropout(x.mean(axis=(2, 3, 4))))


def build(spec, **kwargs):
    return I3DResNet(spec, **kwargs)
