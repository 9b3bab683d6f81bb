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
