"""Probe and decode video files with PyAV (avi, mp4, mkv, webm, gif, ...).

    from core.video import probe, iter_frames, resize_short_side
    info = probe("v_CricketShot_g04_c01.avi")   # VideoInfo(n_frames=79, fps=25.0, ...)
    for frame in iter_frames("clip.mkv", fps=10):  # RGB uint8, H x W x 3
        small = resize_short_side(frame, 240)

Container headers often lack the frame count (.mkv, .webm) or get it wrong
(truncated files, packed bitstreams), so `probe` counts frames by decoding:
its `n_frames` always equals the number of frames `iter_frames` yields.
Files that cannot be decoded raise `VideoError`, whose message names the file.
So do files that decode fewer intact frames than their headers promise (the
frame count; without one, frames up to the end of the stated duration, whatever
the frame rate does on the way) by more than max(2 frames, 5%):
cut-short downloads and files damaged in the middle, whose decoder would
otherwise skip or conceal the lost part without a word.
"""
import os
from dataclasses import dataclass

import av
import cv2
import numpy as np


class VideoError(Exception):
    """A file that is not a decodable video: corrupt, truncated, empty or not a video at all."""

    def __init__(self, path, reason):
        super().__init__(f"{path}: {reason}")
        self.path = str(path)
        self.reason = reason


@dataclass(frozen=True)
class VideoInfo:
    n_frames: int
    fps: float
    width: int
    height: int
    duration: float  # seconds, n_frames / fps


def _decode(path):
    """Yield (frame rate, time in seconds, av.VideoFrame) per decoded frame; raise VideoError on bad files."""
    if not os.path.isfile(path):
        raise VideoError(path, "no such file")
    if os.path.getsize(path) == 0:
        raise VideoError(path, "empty file (0 bytes)")
    try:
        container = av.open(str(path))
    except (av.error.FFmpegError, OSError) as error:
        raise VideoError(path, f"not a readable video: {error.strerror or error}") from error
    with container:
        if not container.streams.video:
            raise VideoError(path, "no video stream")
        stream = container.streams.video[0]
        stream.thread_type = "AUTO"
        fps = float(stream.average_rate or stream.guessed_rate or 25)
        n_decoded = n_damaged = 0
        first_time = last_time = None
        gap = None  # the shortest interval between frames, a lower bound of the last frame's display time
        try:
            for frame in container.decode(stream):
                time = frame.time if frame.time is not None else n_decoded / fps
                if last_time is not None and time > last_time:
                    gap = min(gap or time - last_time, time - last_time)
                first_time = time if first_time is None else first_time
                last_time = time
                yield fps, time, frame
                n_decoded += 1
                n_damaged += frame.is_corrupt  # decoded with errors the decoder concealed
        except av.error.FFmpegError as error:
            raise VideoError(path, f"decoding failed after {n_decoded} frames: {error.strerror or error}") from error
        if n_decoded == 0:
            raise VideoError(path, "no frames could be decoded")
        gap = gap or 1 / fps
        problem = _shortfall(container, stream, n_decoded, n_damaged, first_time, last_time + gap, gap)
        if problem:
            raise VideoError(path, f"truncated or corrupt: {problem}")


def _shortfall(container, stream, n_decoded, n_damaged, first_time, end_time, gap):
    """What the decoded frames lack of what the headers promise, beyond max(2 frames, 5%); None if nothing.

    With a frame count in the headers (avi, mp4), intact frames are counted against it. Without one (mkv,
    webm), the frames must reach the end of the stream's (or container's) duration: the frame rate is no
    guide there, as phones and browsers write variable-rate files whose nominal rate times the duration
    overcounts them.
    """
    expected = stream.frames
    if not expected:
        end = _promised_end(container, stream, first_time)
        if end is not None and end_time < end - max(2 * gap, 0.05 * (end - first_time)):
            return f"decoded {n_decoded} frames up to {end_time:.2f} s of {end:.2f} s"
        expected = n_decoded
    n_intact = n_decoded - n_damaged
    # A frame or two may legitimately go missing (packed bitstreams, edit lists, rounded durations).
    if n_intact < expected - max(2, 0.05 * expected):
        damaged = f" ({n_damaged} more damaged)" if n_damaged else ""
        return f"decoded {n_intact} of about {expected} frames{damaged}"
    return None


def _promised_end(container, stream, first_time):
    """The time in seconds at which the stream's (else the container's) duration says the video ends."""
    if stream.duration is not None and stream.time_base:
        start = float(stream.start_time * stream.time_base) if stream.start_time is not None else first_time
        return start + float(stream.duration * stream.time_base)
    if container.duration is not None:
        start = container.start_time / av.time_base if container.start_time is not None else first_time
        return start + container.duration / av.time_base
    return None


def _quarter_turns(frame):
    """Counter-clockwise quarter turns the frame's display matrix asks for (phones store portrait video
    landscape with a rotation); ffmpeg applies them by default (autorotate), and so do we."""
    return round((frame.rotation or 0) / 90) % 4


def _rgb(frame):
    """The frame as RGB uint8 H x W x 3, turned as it is meant to be displayed."""
    image = frame.to_ndarray(format="rgb24")
    turns = _quarter_turns(frame)
    return np.ascontiguousarray(np.rot90(image, turns)) if turns else image


def probe(path):
    """Frame count (by decoding), frame rate, size (as displayed: rotation applied) and duration of a video."""
    n_frames, fps, width, height = 0, 0.0, 0, 0
    for fps, _, frame in _decode(path):
        if n_frames == 0:
            width, height = frame.width, frame.height
            if _quarter_turns(frame) % 2:
                width, height = height, width
        n_frames += 1
    return VideoInfo(n_frames, fps, width, height, n_frames / fps)


def iter_frames(path, fps=None):
    """Yield RGB uint8 frames (H x W x 3), rotated as their display matrix says (as ffmpeg does by default);
    with `fps`, resample in time by repeating or dropping frames.

    Output frame k shows the source frame on screen at time k / fps (from the first frame's time),
    so the resampled video lasts as long as the source.
    """
    if fps is not None and fps <= 0:
        raise ValueError(f"fps must be positive, got {fps}")
    previous, previous_time, start, n_out = None, 0.0, None, 0
    for source_fps, time, frame in _decode(path):
        if fps is None:
            yield _rgb(frame)
            continue
        start = time if start is None else start
        if previous is not None:
            # Emit the previous frame for every output slot that falls before this frame's time.
            while start + n_out / fps < time - 1e-9:
                yield previous
                n_out += 1
        previous, previous_time = _rgb(frame), time
    if previous is not None:
        end = previous_time + 1 / source_fps
        while start + n_out / fps < end - 1e-9:
            yield previous
            n_out += 1


def iter_frames_with_rate(path):
    """Yield (the stream's frame rate, RGB uint8 frame): iter_frames(path) with the rate that times them."""
    for fps, _, frame in _decode(path):
        yield fps, frame.to_ndarray(format="rgb24")


def resize_short_side(frame, size):
    """Resize so the shorter side is `size` pixels, keeping the aspect ratio; size <= 0 keeps the frame."""
    height, width = frame.shape[:2]
    if size <= 0 or min(height, width) == size:
        return frame
    scale = size / min(height, width)
    new_size = (max(1, round(width * scale)), max(1, round(height * scale)))
    interpolation = cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR
    return cv2.resize(frame, new_size, interpolation=interpolation)
