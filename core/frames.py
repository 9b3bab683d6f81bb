"""Read clips from extracted JPEG frames with OpenCV.

RGB frames are ``<video_dir>/image_00001.jpg`` (1-based, 5 digits). Optical
flow frames are two single-channel JPEGs per frame pair named by a template
(``flow_template`` in the config), e.g. ``image_00001x.jpg`` /
``image_00001y.jpg`` (MindSpore model zoo) or ``flow_x_00001.jpg`` /
``flow_y_00001.jpg`` (dense_flow). A video of N frames has N - 1 flow pairs.

The readers can decode JPEGs at 1/2 or 1/4 resolution (`reduction`; libjpeg
then skips most of the work) and apply a function to every frame right after
decoding (`each`, e.g. crop and resize), so full-size frames are never
stacked. Frames are decoded by a pool of ``cv2.getNumThreads()`` threads
(OpenCV releases the GIL while decoding); where processes are the
parallelism, ``cv2.setNumThreads(1)`` (as core.loader's workers do) makes it
serial. With a core.frame_cache.FrameCache (`cache`), full-size frames are
read from there once decoded.
"""
import os
import string
from concurrent.futures import ThreadPoolExecutor

import cv2
import numpy as np
from PIL import Image

RGB_TEMPLATE = "image_{:05d}.jpg"
FLOW_TEMPLATE = "image_{:05d}{}.jpg"
# The MindSpore zoo's research/cv/I3D/src/tools/convert_rgb_to_flow.py (mindspore-ai/models, commit 0e9c674)
# names its files like FLOW_TEMPLATE but writes N of them for N frames: its file k is the flow from frame
# k - 1 to k, file 1 that of frame 1 to itself (zero motion, uniform 128). Pair k (frame k -> k + 1, what
# core.flow writes as file k) is its file k + 1. The named template MS_ZOO_FLOW reads its folders aligned.
MS_ZOO_FLOW = "ms-zoo"
NAMED_FLOW_TEMPLATES = {MS_ZOO_FLOW: (FLOW_TEMPLATE, 1)}  # name -> (file name template, file index - pair index)

# libjpeg-turbo decodes straight to RGB (IMREAD_COLOR_RGB), sparing a channel-swapping copy of every clip.
_REDUCED_FLAGS = {
    "rgb": {1: cv2.IMREAD_COLOR_RGB, 2: cv2.IMREAD_REDUCED_COLOR_2 | cv2.IMREAD_COLOR_RGB,
            4: cv2.IMREAD_REDUCED_COLOR_4 | cv2.IMREAD_COLOR_RGB},
    "gray": {1: cv2.IMREAD_GRAYSCALE, 2: cv2.IMREAD_REDUCED_GRAYSCALE_2, 4: cv2.IMREAD_REDUCED_GRAYSCALE_4},
}

# Decoding pools by (process id, size): a pool inherited through fork has no threads.
_pools = {}


class FrameError(OSError):
    """A frame file that is missing or cannot be decoded."""


def flow_frame_name(template, index, axis):
    """File name of flow component `axis` ('x' or 'y') of pair `index`.

    The template has two fields: the index one carries a format spec
    ('{:05d}'), the axis one is a bare '{}'; either may come first, so both
    'image_{:05d}{}.jpg' and 'flow_{}_{:05d}.jpg' work. A name of NAMED_FLOW_TEMPLATES ('ms-zoo')
    stands for its file template with its index offset.
    """
    if template in NAMED_FLOW_TEMPLATES:
        template, offset = NAMED_FLOW_TEMPLATES[template]
        return flow_frame_name(template, index + offset, axis)
    specs = [spec for _, field, spec, _ in string.Formatter().parse(template) if field is not None]
    if sorted(bool(spec) for spec in specs) != [False, True]:
        raise ValueError(f"flow template {template!r} needs one '{{}}' for x/y and one '{{:05d}}' for the index")
    return template.format(*(index if spec else axis for spec in specs))


def check_flow_alignment(video_dir, template, last_pair):
    """Refuse a folder of the zoo's flow read with a template that takes its files as ours (one frame off).

    The zoo's folders hold a file past the last pair (N files for N frames) and their first file is zero
    motion in x and y (uniform 128); a folder of core.flow has neither, unless the video starts static.
    """
    if template in NAMED_FLOW_TEMPLATES:
        return
    names = [flow_frame_name(template, index, axis) for index in (last_pair + 1, 1) for axis in ("x", "y")]
    if not all(os.path.isfile(os.path.join(video_dir, name)) for name in names):
        return
    first = [cv2.imread(os.path.join(video_dir, name), cv2.IMREAD_GRAYSCALE) for name in names[2:]]
    if all(image is not None and (image == 128).all() for image in first):
        raise FrameError(f"flow folder {video_dir}: {names[0]} is past the last frame pair {last_pair} and "
                         f"{names[2]} is zero motion: the layout of the MindSpore zoo's convert_rgb_to_flow.py, "
                         f"whose file k is the flow from frame k - 1 to k; set flow_template: {MS_ZOO_FLOW} to read "
                         f"it aligned with the RGB frames")


def _frame_error(path, video_dir, problem):
    return FrameError(f"video '{os.path.basename(video_dir)}': frame file {path} {problem}")


def _check_exists(path, video_dir):
    if not os.path.isfile(path):
        raise _frame_error(path, video_dir, "is missing")


def frame_size(video_dir, name):
    """(height, width) of frame file `name` of `video_dir`, from its header alone."""
    path = os.path.join(video_dir, name)
    _check_exists(path, video_dir)
    try:
        with Image.open(path) as image:
            width, height = image.size
    except OSError:  # e.g. PIL.UnidentifiedImageError, a subclass
        raise _frame_error(path, video_dir, "cannot be decoded") from None
    return height, width


def _read(path, video_dir, flag):
    """Decode one file from its bytes, read once (a second open only to check its end costs ~10% of a decode)."""
    try:
        with open(path, "rb") as file:
            data = file.read()
    except FileNotFoundError:
        raise _frame_error(path, video_dir, "is missing") from None
    except OSError as error:  # e.g. a directory of that name, no permission
        raise _frame_error(path, video_dir, f"cannot be read ({error.strerror})") from None
    image = cv2.imdecode(np.frombuffer(data, np.uint8), flag) if data else None
    # A cut JPEG is decoded with a warning, grey below the cut, or not at all; its end-of-image marker (FF D9,
    # which cannot occur inside the compressed data) is then missing from the last bytes.
    if b"\xff\xd9" not in data[-16:] and (image is not None or data[:2] == b"\xff\xd8"):
        raise _frame_error(path, video_dir, "is truncated (no JPEG end-of-image marker)")
    if image is None:
        raise _frame_error(path, video_dir, "cannot be decoded")
    return image


def _map(function, items):
    threads = min(cv2.getNumThreads(), len(items))
    if threads <= 1:
        return list(map(function, items))
    key = (os.getpid(), threads)
    if key not in _pools:
        _pools[key] = ThreadPoolExecutor(threads, thread_name_prefix="frames")
    return list(_pools[key].map(function, items))


def _decode(path, video_dir, kind, reduction, cache):
    flag = _REDUCED_FLAGS[kind][reduction]
    if cache is None or reduction != 1:
        return _read(path, video_dir, flag)
    try:
        return cache.read(path, kind, lambda _: _read(path, video_dir, flag))
    except FrameError:
        raise
    except OSError:  # the JPEG cannot be stat'ed (missing, no permission): _read names the problem
        return _read(path, video_dir, flag)


def _read_stack(video_dir, names, kind, reduction, each, cache):
    """Decode the files `names` (repeats read once), apply `each`, stack as one T x H x W [x C] array."""
    shapes = {}

    def read(name):
        path = os.path.join(video_dir, name)
        image = _decode(path, video_dir, kind, reduction, cache)
        shapes[name] = image.shape
        if not each:
            return image
        try:
            return each(image)
        except cv2.error:  # e.g. an empty crop: the box lies outside a frame smaller than the video's first one
            raise _frame_error(path, video_dir, f"is {image.shape[1]}x{image.shape[0]}, which the clip's crop "
                                                "does not fit (a frame of another size)") from None

    unique = list(dict.fromkeys(names))
    images = dict(zip(unique, _map(read, unique)))
    if len(set(shapes.values())) > 1:
        # Name the first frame whose size is not the clip's usual one (the most common, else the first frame's).
        sizes = [shapes[name] for name in unique]
        usual = max(sizes, key=lambda shape: (sizes.count(shape), -sizes.index(shape)))
        odd = next(name for name in unique if shapes[name] != usual)
        raise _frame_error(os.path.join(video_dir, odd), video_dir,
                           f"is {shapes[odd][1]}x{shapes[odd][0]}, unlike the other frames of the clip "
                           f"({sorted(set(shapes.values()))})")
    return np.stack([images[name] for name in names])


def read_rgb_frames(video_dir, frame_indices, reduction=1, each=None, cache=None):
    """Frames `frame_indices` (1-based) of `video_dir` as a T x H x W x 3 RGB uint8 array.

    `reduction` (1, 2 or 4) decodes at that fraction of the frame size;
    `each(frame)`, if given, maps every decoded H x W x 3 frame first;
    `cache` (a core.frame_cache.FrameCache) keeps full-size frames once decoded.
    """
    names = [RGB_TEMPLATE.format(i) for i in frame_indices]
    return _read_stack(video_dir, names, "rgb", reduction, each, cache)


def read_flow_frames(video_dir, frame_indices, template=FLOW_TEMPLATE, reduction=1, each=None, cache=None):
    """Flow pairs `frame_indices` (1-based) of `video_dir` as a T x H x W x 2 uint8 array (x, y).

    `reduction`, `each` and `cache` as for read_rgb_frames; `each` gets H x W components.
    """
    components = [_read_stack(video_dir, [flow_frame_name(template, i, axis) for i in frame_indices],
                              "gray", reduction, each, cache)
                  for axis in ("x", "y")]
    if components[0].shape != components[1].shape:
        raise FrameError(f"video '{os.path.basename(video_dir)}': flow x and y frames differ in size")
    return np.stack(components, axis=-1)
