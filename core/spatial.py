"""Spatial sampling of whole clips: crop, resize, flip, scale and normalise.

A clip is a ``T x H x W x C`` numpy array (uint8 until ``ToFloat``). Every
transform is called as ``transform(clip, rng)``; random ones draw their
parameters once per clip from the numpy ``Generator`` ``rng``, so all frames
of a clip get the same crop and flip and a seed reproduces a clip exactly.

The transforms and their arithmetic follow kenshohara/3D-ResNets-PyTorch's
``spatial_transforms.py`` (built on torchvision): ``Scale`` sets the short side
and truncates the long one, ``int(size * long / short)``; centre crops round
their offset with Python's ``round``; ``RandomResizedCrop`` draws like
torchvision's ``RandomResizedCrop.get_params``. Resizing uses OpenCV (area
interpolation when shrinking, bilinear when enlarging), so pixel values are
close to, not identical with, PIL's.

Optical flow clips have C = 2 (x, y); a horizontal flip mirrors the motion,
so it also negates the x component: in uint8 ``v -> 255 - v``, which is
``v -> -v`` once mapped to [-1, 1].
"""
import math

import cv2
import numpy as np

# kenshohara's mean.py: statistics of values in [0, 1].
MEAN_STD = {
    "kinetics": ([0.4345, 0.4051, 0.3775], [0.2768, 0.2713, 0.2737]),
    "activitynet": ([0.4477, 0.4209, 0.3906], [0.2767, 0.2695, 0.2714]),
    "0.5": ([0.5, 0.5, 0.5], [0.5, 0.5, 0.5]),
    # I3D's inputs are in [-1, 1]: (x - 0.5) / 0.5.
    "i3d": ([0.5, 0.5, 0.5], [0.5, 0.5, 0.5]),
}

CORNER_CROP_POSITIONS = ("c", "tl", "tr", "bl", "br")
# kenshohara's MultiScaleCornerCrop scales: 1, 2^-1/4, 2^-1/2, 2^-3/4, 2^-1.
CORNER_CROP_SCALES = tuple(2 ** (-i / 4) for i in range(5))


def resize_clip(clip, height, width):
    """Resize every frame of a T x H x W x C clip to height x width."""
    if clip.shape[1:3] == (height, width):
        return clip
    shrinking = height <= clip.shape[1] and width <= clip.shape[2]
    interpolation = cv2.INTER_AREA if shrinking else cv2.INTER_LINEAR
    frames = [cv2.resize(frame, (width, height), interpolation=interpolation) for frame in clip]
    # cv2 drops a trailing channel axis of size 1.
    return np.stack(frames).reshape(len(frames), height, width, clip.shape[3])


class Scale:
    """Resize so that the short side is `size` (torchvision's Resize(int))."""

    def __init__(self, size):
        self.size = size
        self.min_short_side = size

    def __call__(self, clip, rng=None):
        height, width = clip.shape[1:3]
        if height <= width:
            return resize_clip(clip, self.size, int(self.size * width / height))
        return resize_clip(clip, int(self.size * height / width), self.size)


def _crop(clip, top, left, size):
    height, width = clip.shape[1:3]
    if not (0 <= top and top + size <= height and 0 <= left and left + size <= width):
        raise ValueError(f"cannot crop {size}x{size} at ({top}, {left}) from a {height}x{width} clip")
    return clip[:, top:top + size, left:left + size]


def _corner_offset(position, height, width, size):
    return {
        "c": (int(round((height - size) / 2.0)), int(round((width - size) / 2.0))),
        "tl": (0, 0),
        "tr": (0, width - size),
        "bl": (height - size, 0),
        "br": (height - size, width - size),
    }[position]


class CenterCrop:
    def __init__(self, size):
        self.size = size
        # A crop of fixed pixel size needs the frames at full resolution.
        self.min_short_side = None

    def __call__(self, clip, rng=None):
        return _crop(clip, *_corner_offset("c", *clip.shape[1:3], self.size), self.size)


class CornerCrop:
    """Crop `size` x `size` at a corner or the centre; a random one of the five if `position` is None."""

    def __init__(self, size, position=None):
        self.size = size
        self.position = position
        self.min_short_side = None

    def __call__(self, clip, rng=None):
        position = self.position or CORNER_CROP_POSITIONS[rng.integers(len(CORNER_CROP_POSITIONS))]
        return _crop(clip, *_corner_offset(position, *clip.shape[1:3], self.size), self.size)


class MultiScaleCornerCrop:
    """A square of side int(short side * scale) at a random corner or the centre, resized to `size`."""

    def __init__(self, size, scales=CORNER_CROP_SCALES):
        self.size = size
        self.scales = scales
        self.min_short_side = math.ceil(size / min(scales))

    def __call__(self, clip, rng):
        scale = self.scales[rng.integers(len(self.scales))]
        position = CORNER_CROP_POSITIONS[rng.integers(len(CORNER_CROP_POSITIONS))]
        crop_size = int(min(clip.shape[1:3]) * scale)
        clip = _crop(clip, *_corner_offset(position, *clip.shape[1:3], crop_size), crop_size)
        return resize_clip(clip, self.size, self.size)


class RandomResizedCrop:
    """A random area `scale` and aspect `ratio` crop resized to `size` x `size` (torchvision's)."""

    def __init__(self, size, scale=(0.08, 1.0), ratio=(3 / 4, 4 / 3)):
        self.size = size
        self.scale = scale
        self.ratio = ratio
        # The smallest crop side is at least sqrt(min scale * min ratio) of the short side.
        self.min_short_side = math.ceil(size / math.sqrt(scale[0] * min(ratio[0], 1.0)))

    def crop_box(self, height, width, rng):
        """(top, left, crop height, crop width) as torchvision's get_params draws them."""
        area = height * width
        log_ratio = (math.log(self.ratio[0]), math.log(self.ratio[1]))
        for _ in range(10):
            target_area = area * rng.uniform(*self.scale)
            aspect_ratio = math.exp(rng.uniform(*log_ratio))
            w = int(round(math.sqrt(target_area * aspect_ratio)))
            h = int(round(math.sqrt(target_area / aspect_ratio)))
            if 0 < w <= width and 0 < h <= height:
                return int(rng.integers(0, height - h + 1)), int(rng.integers(0, width - w + 1)), h, w
        # Fallback: the central crop with the closest allowed aspect ratio.
        in_ratio = width / height
        if in_ratio < min(self.ratio):
            w, h = width, int(round(width / min(self.ratio)))
        elif in_ratio > max(self.ratio):
            w, h = int(round(height * max(self.ratio))), height
        else:
            w, h = width, height
        return (height - h) // 2, (width - w) // 2, h, w

    def __call__(self, clip, rng):
        top, left, h, w = self.crop_box(*clip.shape[1:3], rng)
        return resize_clip(clip[:, top:top + h, left:left + w], self.size, self.size)


class RandomHorizontalFlip:
    """Flip with probability `p`; for flow clips (`flow=True`) also negate the x component."""

    def __init__(self, p=0.5, flow=False):
        self.p = p
        self.flow = flow

    def __call__(self, clip, rng):
        if rng.random() >= self.p:
            return clip
        clip = clip[:, :, ::-1]
        if self.flow:
            if clip.dtype != np.uint8:
                raise TypeError("flip flow clips before ToFloat: x is negated as 255 - x")
            clip = np.concatenate([255 - clip[..., :1], clip[..., 1:]], axis=-1)
        return np.ascontiguousarray(clip)


class ToFloat:
    """uint8 -> float32 in [0, value_scale] (kenshohara's ToTensor + ScaleValue)."""

    def __init__(self, value_scale=1):
        self.value_scale = value_scale

    def __call__(self, clip, rng=None):
        # The result is stored channels first and returned as a T x H x W x C view: the dataset's
        # C x T x H x W layout is then free, and later arithmetic runs over contiguous planes.
        channels_first = np.empty((clip.shape[-1],) + clip.shape[:-1], np.float32)
        np.multiply(np.moveaxis(clip, -1, 0), np.float32(self.value_scale / 255), out=channels_first)
        return np.moveaxis(channels_first, 0, -1)


class Normalize:
    """(x - mean) / std per channel."""

    def __init__(self, mean, std):
        self.mean = np.asarray(mean, np.float32)
        self.std = np.asarray(std, np.float32)

    def __call__(self, clip, rng=None):
        normalized = clip - self.mean  # keeps the memory layout of `clip`
        normalized /= self.std
        return normalized


class Compose:
    """Apply transforms in order with one rng.

    `min_short_side` is what the first resizing transform needs from the
    decoded frames, so that the frame reader may decode JPEGs at 1/2 or 1/4
    resolution; None means full resolution.
    """

    def __init__(self, transforms):
        self.transforms = list(transforms)
        geometric = [t for t in self.transforms if hasattr(t, "min_short_side")]
        self.min_short_side = geometric[0].min_short_side if geometric else None

    def __call__(self, clip, rng=None):
        for transform in self.transforms:
            clip = transform(clip, rng)
        return clip


def mean_std(config):
    """Normalisation statistics for `config` (kenshohara's get_mean_std + get_normalize_method).

    `mean_dataset` "i3d" (and "0.5") map values to [-1, 1]. Flow is always
    mapped to [-1, 1]: v / 255 * 2 - 1, whatever `mean_dataset` says.
    """
    scale = config.value_scale
    if config.modality == "flow":
        return [0.5 * scale] * 2, [0.5 * scale] * 2
    mean, std = MEAN_STD[config.mean_dataset]
    mean = [0.0] * 3 if config.no_mean_norm else [m * scale for m in mean]
    std = [1.0] * 3 if config.no_std_norm else [s * scale for s in std]
    return mean, std


def build_spatial(config, train, inference=False):
    """The spatial sampling of kenshohara's main.py for training, validation or inference.

    training: `train_crop` (random resized / multi-scale corner / scale + centre),
    then a flip unless `no_hflip`; validation: scale + centre crop; inference:
    scale, + centre crop if `inference_crop` is "center". All end with
    ToFloat(`value_scale`) and Normalize(mean_std(config)).
    """
    if train and inference:
        raise ValueError("build_spatial: train and inference are exclusive")
    size = config.sample_size
    if train:
        if config.train_crop == "random":
            min_ratio = config.train_crop_min_ratio
            transforms = [RandomResizedCrop(size, (config.train_crop_min_scale, 1.0), (min_ratio, 1.0 / min_ratio))]
        elif config.train_crop == "corner":
            transforms = [MultiScaleCornerCrop(size)]
        else:
            transforms = [Scale(size), CenterCrop(size)]
        if not config.no_hflip:
            transforms.append(RandomHorizontalFlip(flow=config.modality == "flow"))
    elif inference and config.inference_crop == "nocrop":
        transforms = [Scale(size)]
    else:
        transforms = [Scale(size), CenterCrop(size)]
    transforms += [ToFloat(config.value_scale), Normalize(*mean_std(config))]
    return Compose(transforms)
