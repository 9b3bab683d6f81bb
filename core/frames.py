"""Read clips from extracted JPEG frames with OpenCV.

RGB frames are ``<video_dir>/image_00001.jpg`` (1-based, 5 digits). Optical
flow frames are two single-channel JPEGs per frame pair named by a template
(``flow_template`` in the config), e.g. ``image_00001x.jpg`` /
``image_00001y.jpg`` (MindSpore model zoo) or ``flow_x_00001.jpg`` /
``flow_y_00001.jpg`` (dense_flow). A video of N frames has N - 1 flow pairs.

When the caller says how large the short side must be (`min_short_side`),
JPEGs are decoded at 1/4 or 1/2 resolution where that still leaves enough
pixels; libjpeg then skips most of the work. The frame size comes from the
first frame's header, so the choice is the same for every clip of a video.
"""
import os
import string

import cv2
import numpy as np
from PIL import Image

RGB_TEMPLATE = "image_{:05d}.jpg"
FLOW_TEMPLATE = "image_{:05d}{}.jpg"

# libjpeg-turbo decodes straight to RGB (IMREAD_COLOR_RGB), sparing a channel-swapping copy of every clip.
_REDUCED_FLAGS = {
    "rgb": {1: cv2.IMREAD_COLOR_RGB, 2: cv2.IMREAD_REDUCED_COLOR_2 | cv2.IMREAD_COLOR_RGB,
            4: cv2.IMREAD_REDUCED_COLOR_4 | cv2.IMREAD_COLOR_RGB},
    "gray": {1: cv2.IMREAD_GRAYSCALE, 2: cv2.IMREAD_REDUCED_GRAYSCALE_2, 4: cv2.IMREAD_REDUCED_GRAYSCALE_4},
}


class FrameError(OSError):
    """A frame file that is missing or cannot be decoded."""


def flow_frame_name(template, index, axis):
    """File name of flow component `axis` ('x' or 'y') of pair `index`.

    The template has two fields: the index one carries a format spec
    ('{:05d}'), the axis one is a bare '{}'; either may come first, so both
    'image_{:05d}{}.jpg' and 'flow_{}_{:05d}.jpg' work.
    """
    specs = [spec for _, field, spec, _ in string.Formatter().parse(template) if field is not None]
    if sorted(bool(spec) for spec in specs) != [False, True]:
        raise ValueError(f"flow template {template!r} needs one '{{}}' for x/y and one '{{:05d}}' for the index")
    return template.format(*(index if spec else axis for spec in specs))


def _reduction(path, video_dir, min_short_side):
    """The largest JPEG decoding reduction (1, 2 or 4) that keeps the short side >= min_short_side."""
    if not min_short_side:
        return 1
    _check_exists(path, video_dir)
    with Image.open(path) as image:
        short_side = min(image.size)
    return next(factor for factor in (4, 2, 1) if factor == 1 or short_side / factor >= min_short_side)


def _check_exists(path, video_dir):
    if not os.path.isfile(path):
        raise FrameError(f"video '{os.path.basename(video_dir)}': frame file {path} is missing")


def _read(path, video_dir, flag):
    image = cv2.imread(path, flag)
    if image is None:
        _check_exists(path, video_dir)
        raise FrameError(f"video '{os.path.basename(video_dir)}': frame file {path} cannot be decoded")
    return image


def _read_stack(video_dir, names, kind, min_short_side):
    """Decode the files `names` (repeats read once) as one T x H x W [x C] array."""
    paths = {name: os.path.join(video_dir, name) for name in names}
    flag = _REDUCED_FLAGS[kind][_reduction(paths[names[0]], video_dir, min_short_side)]
    images = {name: _read(path, video_dir, flag) for name, path in paths.items()}
    shapes = {image.shape for image in images.values()}
    if len(shapes) > 1:
        raise FrameError(f"video '{os.path.basename(video_dir)}': frames differ in size {sorted(shapes)}")
    return np.stack([images[name] for name in names])


def read_rgb_frames(video_dir, frame_indices, min_short_side=None):
    """Frames `frame_indices` (1-based) of `video_dir` as a T x H x W x 3 RGB uint8 array."""
    names = [RGB_TEMPLATE.format(i) for i in frame_indices]
    return _read_stack(video_dir, names, "rgb", min_short_side)


def read_flow_frames(video_dir, frame_indices, template=FLOW_TEMPLATE, min_short_side=None):
    """Flow pairs `frame_indices` (1-based) of `video_dir` as a T x H x W x 2 uint8 array (x, y)."""
    components = [_read_stack(video_dir, [flow_frame_name(template, i, axis) for i in frame_indices],
                              "gray", min_short_side)
                  for axis in ("x", "y")]
    if components[0].shape != components[1].shape:
        raise FrameError(f"video '{os.path.basename(video_dir)}': flow x and y frames differ in size")
    return np.stack(components, axis=-1)
