"""Inception-v1 I3D, as piergiaj/pytorch-i3d pytorch_i3d.py, and the MindSpore zoo's variant of it
(`i3d_mszoo`: max pool head, BatchNorm eps 1e-5; core/archs/i3d.py says where they differ).

Same module tree as `rgb_imagenet.pt` / `flow_imagenet.pt`. Convs and max
pools zero-pad TF-style ("SAME") from the input size at run time, as the
TensorFlow original does.
"""
import paddle
import paddle.nn.functional as F
from paddle import nn

from core.archs import scaled
from core.archs.i3d import ENDPOINTS, head_pool_kernel, mixed_out_channels, mixed_units, same_padding, unit_convs
from .resnet import BatchNorm3D, torch_default_init


def pad_same(x, kernel, stride):
    """Zero-pad the T, H, W of a (B, C, T, H, W) tensor so that the output size is ceil(size / stride)."""
    pads = [same_padding(size, k, s) for size, k, s in zip(x.shape[2:], kernel, stride)]
    # F.pad takes the last dimension first.
    return F.pad(x, [p for before_after in reversed(pads) for p in before_after])


class MaxPool3dSamePadding(nn.MaxPool3D):

    def forward(self, x):
        return super().forward(pad_same(x, self.ksize, self.stride))


class Unit3D(nn.Layer):
    """Conv3d (same padding) -> BatchNorm -> activation."""

    def __init__(self, in_channels, output_channels, kernel_shape=(1, 1, 1), stride=(1, 1, 1),
                 activation_fn=F.relu, use_batch_norm=True, use_bias=False, bn_eps=1e-3, bn_momentum=0.01):
        super().__init__()
        self.kernel_shape = tuple(kernel_shape)
        self.stride = tuple(stride)
        self.activation_fn = activation_fn
        self.conv3d = nn.Conv3D(in_channels, output_channels, kernel_size=self.kernel_shape, stride=self.stride,
                                padding=0, bias_attr=use_bias)
        # Paddle's momentum weighs the running statistics, PyTorch's the batch: 1 - m.
        self.bn = BatchNorm3D(output_channels, epsilon=bn_eps,
                                 momentum=1 - bn_momentum) if use_batch_norm else None

    def forward(self, x):
        x = self.conv3d(pad_same(x, self.kernel_shape, self.stride))
        if self.bn is not None:
            x = self.bn(x)
        if self.activation_fn is not None:
            x = self.activation_fn(x)
        return x


class SeparableUnit3D(nn.Layer):
    """video_classification_pytorch's STConv3d: a (1, k, k) Unit3D, then a (k, 1, 1) one (s3d_tf)."""

    def __init__(self, spatial, temporal):
        super().__init__()
        self.spatial = spatial
        self.temporal = temporal

    def forward(self, x):
        return self.temporal(self.spatial(x))


def make_unit(structure, in_channels, out_channels, kernel, stride=(1, 1, 1)):
    """The Unit3D (or, separable, the two) of core.archs.i3d.unit_convs, with the variant's BatchNorm."""
    units = [Unit3D(conv_in, conv_out, conv_kernel, conv_stride, bn_eps=structure["bn_eps"],
                    bn_momentum=structure["bn_momentum"])
             for _, conv_in, conv_out, conv_kernel, conv_stride in unit_convs(structure, "", in_channels,
                                                                               out_channels, kernel, stride)]
    return units[0] if len(units) == 1 else SeparableUnit3D(*units)


class InceptionModule(nn.Layer):
    """Four branches concatenated: 1x1; 1x1 -> 3x3; 1x1 -> 3x3; 3x3 max pool -> 1x1."""

    def __init__(self, in_channels, out_channels, structure):
        super().__init__()
        for branch, conv_in, conv_out, kernel in mixed_units(out_channels, in_channels):
            setattr(self, branch, make_unit(structure, conv_in, conv_out, (kernel,) * 3))
        self.b3a = MaxPool3dSamePadding(kernel_size=(3, 3, 3), stride=(1, 1, 1))

    def forward(self, x):
        return paddle.concat([self.b0(x), self.b1b(self.b1a(x)), self.b2b(self.b2a(x)), self.b3b(self.b3a(x))],
                             axis=1)


class InceptionI3d(nn.Layer):

    def __init__(self, spec, n_classes, n_input_channels, widen_factor, dropout):
        super().__init__()
        self.structure = spec.structure
        channels = n_input_channels
        for name, (kind, *layer) in ENDPOINTS:
            if kind == "unit":
                width, kernel, stride = layer
                self.add_sublayer(name, make_unit(self.structure, channels, scaled(width, widen_factor), kernel,
                                                stride))
                channels = scaled(width, widen_factor)
            elif kind == "pool":
                kernel, stride = layer
                self.add_sublayer(name, MaxPool3dSamePadding(kernel_size=kernel, stride=stride))
            else:
                widths = [scaled(w, widen_factor) for w in layer[0]]
                self.add_sublayer(name, InceptionModule(channels, widths, self.structure))
                channels = mixed_out_channels(widths)
        self.dropout = nn.Dropout(dropout)
        self.logits = Unit3D(channels, n_classes, activation_fn=None, use_batch_norm=False, use_bias=True)
        # piergiaj's convs keep PyTorch's default initialisation.
        for layer in self.sublayers():
            if isinstance(layer, nn.Conv3D):
                torch_default_init(layer)

    def forward(self, x):
        for name, _ in ENDPOINTS:
            x = getattr(self, name)(x)
        # piergiaj averages (2, 7, 7), the zoo takes the max over (T / 8, 7, 7), stride 1 (224 x 224 input);
        # smaller clips pool what is left.
        pool = F.avg_pool3d if self.structure["head_pool"] == "avg" else F.max_pool3d
        x = pool(x, kernel_size=head_pool_kernel(self.structure, *x.shape[2:]), stride=1)
        x = self.logits(self.dropout(x))
        return x.mean(axis=(2, 3, 4))


def build(spec, **kwargs):
    return InceptionI3d(spec, **kwargs)
