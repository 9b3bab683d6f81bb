"""Tiny test videos: real encoded files, a few frames of 32-48 pixels."""
import numpy as np

from core.synthetic import make_background, render_clip, write_video


def tiny_clip(n_frames=8, height=32, width=32, seed=0):
    """RGB uint8 frames (T x H x W x 3) of a shape moving over a smooth background."""
    size = max(height, width)
    frames = render_clip("MoveRight", size, n_frames, np.random.default_rng(seed),
                         make_background(np.random.default_rng(seed + 1), size))
    return frames[:, :height, :width]


def write_tiny_video(path, n_frames=8, height=32, width=32, seed=0):
    """Encode a tiny clip to path (codec from the extension); return the frames written."""
    frames = tiny_clip(n_frames, height, width, seed)
    write_video(str(path), frames)
    return frames


def write_truncated(path, source, fraction=0.5):
    """Copy the first `fraction` of source's bytes to path, as an interrupted download would."""
    data = open(source, "rb").read()
    with open(path, "wb") as f:
        f.write(data[:int(len(data) * fraction)])
