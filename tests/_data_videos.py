"""Tiny test videos: real encoded files, a few frames of 32-48 pixels."""
import av
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


def write_corrupted(path, source, start=0.375, end=0.625):
    """Copy source to path with the bytes from `start` to `end` (fractions of the size) zeroed: a damaged disk."""
    data = bytearray(open(source, "rb").read())
    first, last = int(len(data) * start), int(len(data) * end)
    data[first:last] = bytes(last - first)
    with open(path, "wb") as f:
        f.write(data)


def write_faststart(path, source):
    """Remux an .mp4 with its index (moov) before the frames, as streaming sites serve them; return path.

    Cut short, such a file still opens: only the frames after the cut are lost.
    """
    with av.open(str(source)) as src, av.open(str(path), "w", options={"movflags": "faststart"}) as dst:
        stream = dst.add_stream_from_template(src.streams.video[0])
        for packet in src.demux(src.streams.video[0]):
            if packet.dts is not None:  # the demuxer's final empty packet
                packet.stream = stream
                dst.mux(packet)
    return path


def write_variable_rate_video(path, n_fast=30, n_slow=30, size=32):
    """n_fast frames 1/30 s apart, then n_slow frames 1/10 s apart (a phone or browser recording whose rate
    drops); the nominal rate the container states is 30 fps. Returns the frames written."""
    from fractions import Fraction
    frames = tiny_clip(n_fast + n_slow, size, size)
    with av.open(str(path), "w") as container:
        stream = container.add_stream("libvpx" if str(path).endswith(".webm") else "mpeg4", rate=30)
        stream.width = stream.height = size
        stream.pix_fmt = "yuv420p"
        stream.time_base = Fraction(1, 1000)
        time = 0.0
        for index, image in enumerate(frames):
            frame = av.VideoFrame.from_ndarray(image, format="rgb24")
            frame.pts, frame.time_base = round(time * 1000), Fraction(1, 1000)
            container.mux(stream.encode(frame))
            time += 1 / 30 if index < n_fast else 1 / 10
        container.mux(stream.encode())
    return frames


def write_rotated_video(path, degrees, height=32, width=48, n_frames=3):
    """An .mp4 whose display matrix rotates its frames `degrees` counter-clockwise (as phones record portrait);
    the stored frames are `height` x `width`, white in their left third. Returns one stored frame."""
    image = np.zeros((height, width, 3), np.uint8)
    image[:, :width // 3] = 255
    with av.open(str(path), "w") as container:
        stream = container.add_stream("mpeg4", rate=25)
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        stream.set_display_rotation(degrees)
        for _ in range(n_frames):
            container.mux(stream.encode(av.VideoFrame.from_ndarray(image, format="rgb24")))
        container.mux(stream.encode())
    return image


def write_class_folders(root, classes=("Fight", "NonFight"), videos_per_split=(("train", 4), ("val", 2)),
                        containers=("mkv", "mp4", "webm", "avi"), n_frames=16, size=32, seed=0):
    """A user's dataset: root/<split>/<class>/<name>.<container>, one motion per class (core.synthetic's
    MoveLeft, MoveRight, ...), containers cycling; returns the paths written."""
    from core.synthetic import MOTIONS
    paths = []
    for split, count in videos_per_split:
        for label, name in enumerate(classes):
            folder = root / split / name
            folder.mkdir(parents=True, exist_ok=True)
            for index in range(count):
                rng = np.random.default_rng((seed, label, index, len(paths)))
                frames = render_clip(MOTIONS[label], size, n_frames, rng, make_background(rng, size))
                paths.append(folder / f"{name.lower()}_{split}_{index}.{containers[len(paths) % len(containers)]}")
                write_video(str(paths[-1]), frames)
    return paths
