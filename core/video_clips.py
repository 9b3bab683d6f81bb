"""Clips straight from video files (config `frame_source: video`): no extracted JPEGs.

Frame k (1-based) of a video is its k-th frame in presentation order, the one core.extract_frames
writes as image_0000k.jpg, so annotations, temporal sampling and transforms are those of the frames
route. A file is demuxed once (packets only, no decoding) for the presentation times of its frames;
a clip then seeks to the keyframe before its first frame and decodes, with FFmpeg's threads, only up
to its last frame.
"""
import os

import av
import numpy as np

from core.frames import FrameError

VIDEO_EXTENSIONS = (".mp4", ".mkv", ".webm", ".avi", ".mov", ".gif")


def find_video_file(stem):
    """The file `stem` + a video extension, or None (`stem` is <root>/<label>/<video_id>)."""
    for extension in VIDEO_EXTENSIONS:
        if os.path.isfile(stem + extension):
            return stem + extension
    return None


class VideoIndex:
    """Presentation times of every frame of one file, and its frame size."""

    def __init__(self, path):
        self.path = path
        try:
            with av.open(path) as container:
                stream = container.streams.video[0]
                self.height, self.width = stream.codec_context.height, stream.codec_context.width
                self.times = sorted(packet.pts for packet in container.demux(stream)
                                    if packet.pts is not None and packet.size)
        except (av.error.FFmpegError, OSError, IndexError) as error:
            raise FrameError(f"video file {path}: cannot be read ({error})") from None
        if not self.times:
            raise FrameError(f"video file {path}: no frames")

    def __len__(self):
        return len(self.times)

    def read(self, frame_indices, each=None):
        """Frames `frame_indices` (1-based) as T x H x W x 3 RGB uint8, `each` applied to every decoded one."""
        if not 1 <= min(frame_indices) <= max(frame_indices) <= len(self.times):
            raise FrameError(f"video file {self.path}: frames {min(frame_indices)}..{max(frame_indices)} "
                             f"asked, it has {len(self.times)}")
        wanted = {self.times[i - 1] for i in frame_indices}
        last = max(wanted)
        frames = {}
        try:
            with av.open(self.path) as container:
                stream = container.streams.video[0]
                stream.thread_type = "AUTO"
                container.seek(min(wanted), stream=stream, backward=True)
                for frame in container.decode(stream):
                    if frame.pts in wanted:
                        image = frame.to_ndarray(format="rgb24")
                        frames[frame.pts] = each(image) if each else image
                    if frame.pts is not None and frame.pts >= last:
                        break
        except av.error.FFmpegError as error:
            raise FrameError(f"video file {self.path}: decoding failed ({error})") from None
        if len(frames) < len(wanted):
            raise FrameError(f"video file {self.path}: {len(wanted) - len(frames)} frames of the clip could not "
                             f"be decoded")
        return np.stack([frames[self.times[i - 1]] for i in frame_indices])
