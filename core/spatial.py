"""Spatial sampling of whole clips: crop, resize, flip, scale and normalise.

A clip is a ``T x H x W x C`` numpy array (uint8 until ``Normalize``). Every
transform is called as ``transform(clip, rng)``; random ones draw their
parameters once per clip from the numpy ``Generator`` ``rng``, so all frames
of a clip get the same crop and flip and a seed reproduces a clip exactly.

The transforms and their arithmetic follow kenshohara/3D-ResNets-PyTorch's
``spatial_transforms.py`` (built on torchvision): ``Scale`` sets the short side
and truncates the long one, ``int(size * long / short)``; centre crops round
their offset with Python's ``round``; ``RandomResizedCrop`` draws like
torchvision's ``RandomResizedCrop.get_params``.

Resizing has two routes (``CropTransform.pil_resize``):
- validation and inference (``build_spatial(train=False)``) crop, then resize
  with PIL's antialiased bilinear ``Image.resize``, as torchvision's Resize
  does on the PIL images of kenshohara's loader: the reference's pixels
  exactly (main.py get_val_utils / get_inference_utils, commit 540a0ea);
- training resizes with OpenCV (0.1 against PIL's 0.3 ms for a 240 x 240 crop
  to 112 x 112): area interpolation on an axis that shrinks (an axis shrunk
  1.5x or more: bilinear to an integer multiple of its size, then OpenCV's
  fast integer area path), bilinear on one that grows, each axis on its own
  when one shrinks and the other grows (a single bilinear call would alias
  the shrinking axis). Mean absolute difference from PIL ~0.2-0.7 of 255 on
  320 x 240 video frames (tests/test_reference_pixels.py bounds it by 2).

Loading (``Compose.load``) draws the crop before decoding and crops and
resizes every frame as soon as it is decoded. Training transforms
(``build_spatial(train=True)``) also decode JPEGs at 1/2 or 1/4 resolution
when the crop is shrunk at least that much anyway: libjpeg's reduced
decoding then stands in for part of the shrinking, which changes pixel
values by ~0.4-1.1 of 255 on average (max ~20-45 at sharp edges) for the
full-height corner crop of a 320 x 240 frame to 112 x 112. Validation and
inference always decode at full resolution.

Optical flow clips have C = 2 (x, y); a horizontal flip mirrors the motion,
so it also negates the x component: in uint8 ``v -> 255 - v``, which is
``v -> -v`` once mapped to [-1, 1].
"""
import math
from typing import NamedTuple

import cv2
import numpy as np
from PIL import Image

# kenshohara's mean.py: statistics of values in [0, 1].
MEAN_STD = {
    "kinetics": ([0.4345, 0.4051, 0.3775], [0.2768, 0.2713, 0.2737]),
    "activitynet": ([0.4477, 0.4209, 0.3906], [0.2767, 0.2695, 0.2714]),
    "0.5": ([0.5, 0.5, 0.5], [0.5, 0.5, 0.5]),
    # I3D's inputs are in [-1, 1]: (x - 0.5) / 0.5.
    "i3d": ([0.5, 0.5, 0.5], [0.5, 0.5, 0.5]),
    # MMAction2's data_preprocessor: ImageNet's mean [123.675, 116.28, 103.53] and std [58.395, 57.12, 57.375]
    # on 0-255, the same as these on 0-1.
    "imagenet": ([0.485, 0.456, 0.406], [0.229, 0.224, 0.225]),
    # yjxiong/tsn-pytorch's BN-Inception: 0..255 input minus [104, 117, 128] in BGR order, std 1: listed in RGB order,
    # as `bgr` reverses the channels after normalising.
    "bninception": ([128 / 255, 117 / 255, 104 / 255], [1 / 255] * 3),
    # MMAction2's CSN files ported from VMZ were trained on VMZ's statistics (110.2008, 100.63983, 95.99475 /
    # 58.14765, 56.46975, 55.332195 of 255).
    "vmz": ([110.2008 / 255, 100.63983 / 255, 95.99475 / 255], [58.14765 / 255, 56.46975 / 255, 55.332195 / 255]),
}

CORNER_CROP_POSITIONS = ("c", "tl", "tr", "bl", "br")
# kenshohara's MultiScaleCornerCrop scales: 1, 2^-1/4, 2^-1/2, 2^-3/4, 2^-1.
CORNER_CROP_SCALES = tuple(2 ** (-i / 4) for i in range(5))


class Region(NamedTuple):
    """A crop box of a frame, in pixels, the size the crop is resized to, and how (PIL's or OpenCV's)."""

    top: int
    left: int
    height: int
    width: int
    out_height: int
    out_width: int
    pil_resize: bool = False

    def reduction(self):
        """The largest JPEG decoding reduction (1, 2 or 4) by which the crop is shrunk anyway."""
        return next(factor for factor in (4, 2, 1) if factor == 1 or (
            self.height >= factor * self.out_height and self.width >= factor * self.out_width))

    def reduced(self, factor):
        """This region in the frame decoded at 1 / `factor` of its size (edges rounded to whole pixels)."""
        top, left = round(self.top / factor), round(self.left / factor)
        bottom, right = round((self.top + self.height) / factor), round((self.left + self.width) / factor)
        return self._replace(top=top, left=left, height=bottom - top, width=right - left)

    def check(self, height, width):
        if not (0 <= self.top and self.top + self.height <= height and 0 <= self.left
                and self.left + self.width <= width):
            raise ValueError(f"cannot crop {self.height}x{self.width} at ({self.top}, {self.left}) "
                             f"from a {height}x{width} frame")

    def __call__(self, frame):
        """Crop and resize one H x W [x C] uint8 frame."""
        crop = frame[self.top:self.top + self.height, self.left:self.left + self.width]
        if (self.height, self.width) == (self.out_height, self.out_width):
            return crop
        if self.pil_resize:
            return pil_resize(crop, self.out_height, self.out_width)
        return fast_resize(crop, self.out_height, self.out_width)


def pil_resize(image, height, width):
    """PIL's antialiased bilinear resize of an H x W [x C] uint8 array: torchvision's Resize on a PIL image.

    Channels other than RGB are resized one by one (PIL would premultiply a 2-channel image as LA); PIL
    resizes each channel of an RGB image with the same filter, so the values are the same.
    """
    if image.ndim == 3 and image.shape[2] != 3:
        return np.stack([pil_resize(image[..., c], height, width) for c in range(image.shape[2])], axis=-1)
    resized = Image.fromarray(np.ascontiguousarray(image)).resize((width, height), Image.BILINEAR)
    return np.asarray(resized)


def _axis_interpolation(size, out_size):
    return cv2.INTER_AREA if out_size <= size else cv2.INTER_LINEAR


def _area_factor(size, out_size):
    """k where an axis shrunk 1.5x or more reaches k x out_size with at most a 10% bilinear shrink, else 1."""
    factor = round(size / out_size)
    return factor if size >= 1.5 * out_size and factor * out_size >= 0.9 * size else 1


def fast_resize(image, height, width):
    """OpenCV resize of an H x W [x C] uint8 array: area on a shrinking axis, bilinear on a growing one.

    An axis shrunk 1.5x or more is first resized bilinearly to k times its output size (an integer k, a
    change of at most 10%: no aliasing) and then averaged k to 1, OpenCV's integer area path: about half
    the time of its fractional area resize and as close to PIL's filter (closer from 1.5x to 2x).
    """
    in_height, in_width = image.shape[:2]
    row_factor, col_factor = _area_factor(in_height, height), _area_factor(in_width, width)
    if row_factor > 1 or col_factor > 1:
        return cv2.resize(cv2.resize(image, (col_factor * width, row_factor * height), interpolation=cv2.INTER_LINEAR),
                          (width, height), interpolation=cv2.INTER_AREA)
    rows, cols = _axis_interpolation(in_height, height), _axis_interpolation(in_width, width)
    if rows == cols:
        return cv2.resize(image, (width, height), interpolation=rows)
    # One axis shrinks and the other grows: one axis at a time, or the bilinear pass aliases the shrinking one.
    return cv2.resize(cv2.resize(image, (in_width, height), interpolation=rows), (width, height),
                      interpolation=cols)


class CropTransform:
    """A transform that crops (and maybe resizes) every frame with one `region(height, width, rng)` per clip.

    `pil_resize` (set by build_spatial for validation and inference) resizes with PIL, as the reference.
    """

    pil_resize = False

    def clip_region(self, height, width, rng):
        """The checked region of a clip of `height` x `width` frames, with this transform's resize route."""
        region = self.region(height, width, rng)._replace(pil_resize=self.pil_resize)
        region.check(height, width)
        return region

    def __call__(self, clip, rng=None):
        region = self.clip_region(*clip.shape[1:3], rng)
        if (region.height, region.width) == (region.out_height, region.out_width):
            return clip[:, region.top:region.top + region.height, region.left:region.left + region.width]
        # cv2 drops a trailing channel axis of size 1.
        return np.stack([region(frame) for frame in clip]).reshape(
            len(clip), region.out_height, region.out_width, clip.shape[3])


class Scale(CropTransform):
    """Resize so that the short side is `size` (torchvision's Resize(int))."""

    def __init__(self, size):
        self.size = size

    def region(self, height, width, rng=None):
        if height <= width:
            return Region(0, 0, height, width, self.size, int(self.size * width / height))
        return Region(0, 0, height, width, int(self.size * height / width), self.size)


def _corner_offset(position, height, width, size):
    return {
        "c": (int(round((height - size) / 2.0)), int(round((width - size) / 2.0))),
        "tl": (0, 0),
        "tr": (0, width - size),
        "bl": (height - size, 0),
        "br": (height - size, width - size),
    }[position]


class CenterCrop(CropTransform):
    def __init__(self, size):
        self.size = size

    def region(self, height, width, rng=None):
        return Region(*_corner_offset("c", height, width, self.size), *[self.size] * 4)


class CornerCrop(CropTransform):
    """Crop `size` x `size` at a corner or the centre; a random one of the five if `position` is None."""

    def __init__(self, size, position=None):
        self.size = size
        self.position = position

    def region(self, height, width, rng=None):
        position = self.position or CORNER_CROP_POSITIONS[rng.integers(len(CORNER_CROP_POSITIONS))]
        return Region(*_corner_offset(position, height, width, self.size), *[self.size] * 4)


class MultiScaleCornerCrop(CropTransform):
    """A square of side int(short side * scale) at a random corner or the centre, resized to `size`."""

    def __init__(self, size, scales=CORNER_CROP_SCALES):
        self.size = size
        self.scales = scales

    def region(self, height, width, rng):
        scale = self.scales[rng.integers(len(self.scales))]
        position = CORNER_CROP_POSITIONS[rng.integers(len(CORNER_CROP_POSITIONS))]
        crop_size = int(min(height, width) * scale)
        return Region(*_corner_offset(position, height, width, crop_size), crop_size, crop_size,
                      self.size, self.size)


class RandomResizedCrop(CropTransform):
    """A random area `scale` and aspect `ratio` crop resized to `size` x `size` (torchvision's)."""

    def __init__(self, size, scale=(0.08, 1.0), ratio=(3 / 4, 4 / 3)):
        self.size = size
        self.scale = scale
        self.ratio = ratio

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

    def region(self, height, width, rng):
        return Region(*self.crop_box(height, width, rng), self.size, self.size)


class RandomHorizontalFlip:
    """Flip with probability `p`; for flow clips (`flow=True`) also negate the x component."""

    def __init__(self, p=0.5, flow=False):
        self.p = p
        self.flow = flow

    def __call__(self, clip, rng):
        if rng.random() >= self.p:
            return clip
        if not self.flow:
            return clip[:, :, ::-1]  # a view: Normalize reads it in its single pass
        if clip.dtype != np.uint8:
            raise TypeError("flip flow clips before Normalize: x is negated as 255 - x")
        flipped = clip[:, :, ::-1].copy()
        np.subtract(255, flipped[..., 0], out=flipped[..., 0])
        return flipped


class ColorJitter:
    """Random brightness, contrast, saturation and hue of an RGB uint8 clip, one draw per clip.

    kenshohara's ColorJitter (spatial_transforms.py, commit 540a0ea: torchvision's ColorJitter whose
    parameters randomize_parameters draws once per clip) as torchvision 0.6, of his time, computes it on
    PIL images: each nonzero strength draws its factor uniformly, brightness, contrast and saturation from
    [max(0, 1 - s), 1 + s], hue from [-s, s], in that order, then the adjustments run in a random order
    (ColorJitter.get_params). Every adjustment is PIL's blend of the frame with a "degenerate" image,
    out = trunc(degenerate + factor * (frame - degenerate)) clipped to 0..255 in float32 arithmetic
    (Image.blend, via torchvision's _functional_pil and ImageEnhance): black for brightness, the frame's
    mean grey level int(mean(L) + 0.5) for contrast, the frame's grey L for saturation, with PIL's
    L = (19595 R + 38470 G + 7471 B + 2^15) >> 16. Hue converts to PIL's 8-bit HSV, adds
    int(hue * 255) to H modulo 256 and converts back (torchvision's adjust_hue), with PIL's own
    conversions. Draws come from the clip's numpy rng, not Python's random module.
    """

    def __init__(self, brightness=0.0, contrast=0.0, saturation=0.0, hue=0.0):
        self.ranges = [(name, (-strength, strength) if name == "hue" else (max(0.0, 1 - strength), 1 + strength))
                       for name, strength in zip(("brightness", "contrast", "saturation", "hue"),
                                                 (brightness, contrast, saturation, hue)) if strength > 0]

    def draw(self, rng):
        """[(adjustment, factor), ...] in the order they apply."""
        factors = [(name, float(rng.uniform(*bounds))) for name, bounds in self.ranges]
        return [factors[i] for i in rng.permutation(len(factors))]

    def __call__(self, clip, rng):
        for name, factor in self.draw(rng):
            clip = ADJUSTMENTS[name](clip, factor)
        return clip


def grey(clip):
    """PIL's RGB -> L of a ... x 3 uint8 array (ITU-R 601-2 luma, 16-bit fixed point)."""
    rgb = clip.astype(np.int32)
    return ((rgb[..., 0] * 19595 + rgb[..., 1] * 38470 + rgb[..., 2] * 7471 + 0x8000) >> 16).astype(np.uint8)


def blend_table(factor):
    """PIL's Image.blend(black, image, factor) and Image.blend(grey level, image, factor) of every uint8 value,
    as table[degenerate, value]: trunc(degenerate + factor * (value - degenerate)) in float32, clipped to
    0..255 (PIL's Blend.c)."""
    values = np.arange(256, dtype=np.float32)
    blended = values[:, None] + np.float32(factor) * (values[None, :] - values[:, None])
    return np.clip(blended, 0, 255).astype(np.uint8)


def _look_up(frames, table):
    """table[v] for every value of a ... x W x C uint8 array (OpenCV's LUT: several times numpy's indexing)."""
    frames = np.ascontiguousarray(frames)
    return cv2.LUT(frames.reshape(-1, frames.shape[-2] * frames.shape[-1]), table).reshape(frames.shape)


def adjust_brightness(clip, factor):
    return _look_up(clip, blend_table(factor)[0])  # blended with black


def adjust_contrast(clip, factor):
    # Blended with the frame's mean grey level: one mean per frame, as torchvision adjusts each PIL image alone.
    table, means = blend_table(factor), grey(clip).reshape(len(clip), -1).mean(axis=1)
    return np.stack([_look_up(frame, table[int(mean + 0.5)]) for mean, frame in zip(means, clip)])


def adjust_saturation(clip, factor):
    # Blended with each pixel's grey level, in float32 as PIL's blend computes it.
    degenerate = grey(clip)[..., None].astype(np.float32)
    out = clip.astype(np.float32)
    out -= degenerate
    out *= np.float32(factor)
    out += degenerate
    return np.clip(out, 0, 255, out=out).astype(np.uint8)


def adjust_hue(clip, factor):
    # PIL converts pixel by pixel: the clip's frames stacked into one tall image convert at once.
    t, h, w, _ = clip.shape
    hsv = np.array(Image.fromarray(np.ascontiguousarray(clip).reshape(t * h, w, 3)).convert("HSV"))
    hsv[..., 0] += np.uint8(int(factor * 255) % 256)  # uint8 arithmetic wraps the hue around
    return np.asarray(Image.fromarray(hsv, "HSV").convert("RGB")).reshape(t, h, w, 3)


ADJUSTMENTS = {"brightness": adjust_brightness, "contrast": adjust_contrast, "saturation": adjust_saturation,
               "hue": adjust_hue}


class ThreeCrop:
    """Three `size` x `size` views along the longer side of C x T x H x W clips whose shorter side is `size`.

    MMAction2's ThreeCrop (main branch, commit 4d6c934, mmaction/datasets/transforms/processing.py) after
    Resize(scale=(-1, size)): with step = (long - size) // 2 the views start at 0, 2 * step and step (left,
    right, middle; top, bottom, middle on portrait frames, whose width is the one equal to `size`).
    """

    n_views = 3
    names = ("left/top", "right/bottom", "middle")

    def __init__(self, size):
        self.size = size

    def offsets(self, height, width):
        """[(top, left)] of the three views, in MMAction2's order."""
        if height == self.size:
            step = (width - self.size) // 2
            return [(0, 0), (0, 2 * step), (0, step)]
        if width != self.size:
            raise ValueError(f"three crops of {self.size} px need frames with a side of {self.size}, got "
                             f"{height}x{width}")
        step = (height - self.size) // 2
        return [(0, 0), (2 * step, 0), (step, 0)]

    def __call__(self, clip):
        """The views of a C x T x H x W clip (H and W its last two axes)."""
        return [np.ascontiguousarray(clip[..., top:top + self.size, left:left + self.size])
                for top, left in self.offsets(*clip.shape[-2:])]


class Normalize:
    """uint8 -> float32 (x * value_scale / 255 - mean) / std per channel.

    kenshohara's ToTensor, ScaleValue and Normalize in one pass over the
    clip. The result is stored channels first and returned as a T x H x W x C
    view: the dataset's C x T x H x W layout is then free.
    """

    def __init__(self, mean, std, value_scale=1, reverse_channels=False):
        std = np.asarray(std, np.float64)
        self.gain = (value_scale / 255 / std).astype(np.float32)
        self.offset = (np.asarray(mean, np.float64) / std).astype(np.float32)
        self.reverse_channels = reverse_channels  # RGB frames out as BGR (statistics stay the RGB channels')

    def __call__(self, clip, rng=None):
        n_channels = clip.shape[-1]
        channels_first = np.empty((n_channels,) + clip.shape[:-1], np.float32)
        for channel, (gain, offset) in enumerate(zip(self.gain, self.offset)):
            out = n_channels - 1 - channel if self.reverse_channels else channel
            np.multiply(clip[..., channel], gain, out=channels_first[out])
            channels_first[out] -= offset
        return np.moveaxis(channels_first, 0, -1)


class Compose:
    """Apply transforms in order with one rng.

    `reduced_decoding` lets `load` decode JPEGs at 1/2 or 1/4 resolution
    when the clip's crop is shrunk at least that much anyway. `views` (a
    ThreeCrop, or None) cuts `n_views` views from each C x T x H x W clip
    the transforms give (`split`).
    """

    def __init__(self, transforms, reduced_decoding=False, views=None):
        self.transforms = list(transforms)
        self.reduced_decoding = reduced_decoding
        self.views = views

    @property
    def n_views(self):
        return self.views.n_views if self.views else 1

    def split(self, clip):
        """The views of a C x T x H x W clip: [clip] without multi-view cropping."""
        return self.views(clip) if self.views else [clip]

    def __call__(self, clip, rng=None):
        for transform in self.transforms:
            clip = transform(clip, rng)
        return clip

    def load(self, read, frame_size, rng=None):
        """The transformed clip of the frames that `read(reduction, each)` decodes (core.frames' readers).

        The first transform's region is drawn from `frame_size` (height,
        width) before decoding, with the same rng draws as __call__, so each
        frame is cropped and resized as soon as it is decoded.
        """
        if not self.transforms or not isinstance(self.transforms[0], CropTransform):
            return self(read(1, None), rng)
        region = self.transforms[0].clip_region(*frame_size, rng)
        reduction = region.reduction() if self.reduced_decoding else 1
        clip = read(reduction, region.reduced(reduction))
        for transform in self.transforms[1:]:
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
    then a flip unless `no_hflip`, then `colorjitter` (RGB); validation: scale + centre crop; inference:
    scale, + centre crop if `inference_crop` is "center", + three views (`split`) if "three". All end with
    Normalize(*mean_std(config), `value_scale`). Validation and inference
    resize with PIL (the reference's pixels), training with OpenCV and
    reduced JPEG decoding.
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
        if any(config.colorjitter) and config.modality == "rgb":  # kenshohara's main.py: after the flip
            transforms.append(ColorJitter(*config.colorjitter))
    elif inference and config.inference_crop in ("nocrop", "three"):
        transforms = [Scale(size)]
    else:
        transforms = [Scale(size), CenterCrop(size)]
    for transform in transforms:
        if isinstance(transform, CropTransform):
            transform.pil_resize = not train
    transforms.append(Normalize(*mean_std(config), config.value_scale,
                                reverse_channels=config.bgr and config.modality == "rgb"))
    views = ThreeCrop(size) if inference and config.inference_crop == "three" else None
    return Compose(transforms, reduced_decoding=train, views=views)
