"""A tiny video dataset whose classes differ only in motion, laid out like UCF-101.

    python -m core.synthetic DST [--classes 5] [--videos-per-class 120] [--seed 0]
                                 [--size 48] [--frames 32] [--containers avi,mp4,mkv,webm]

writes

    DST/videos/<ClassName>/v_<ClassName>_g<group>_c<clip>.<ext>
    DST/splits/classInd.txt      "1 MoveLeft"
    DST/splits/trainlist01.txt   "MoveLeft/v_MoveLeft_g02_c01.mp4 1"
    DST/splits/testlist01.txt    "MoveLeft/v_MoveLeft_g01_c01.avi"

Each video shows a striped shape over a smooth background with sensor noise. Its colours, shape,
size, angle and position are random, drawn from the same distributions in every class; only how
the shape moves tells the classes apart (left/right, up/down, growing/shrinking,
clockwise/counterclockwise), so a single frame says nothing about the class while a 3D CNN can learn it. Positions
wrap around the frame edges and size changes are sawtooth cycles with a random phase, which keeps
every frame's appearance distribution identical across classes.

Clip c of group g has the same background in every class, so backgrounds carry no class
information; the first groups form the test list (a third of the groups, at least one, so
--videos-per-class needs at least 5), and test backgrounds are never seen in training. Videos
cycle through the containers (avi: MPEG-4 Part 2, mp4 and mkv: H.264, webm: VP9). The same seed
gives the same decoded pixels.
"""
import argparse
import math
import os

import av
import cv2
import numpy as np
from tqdm import tqdm

# --classes N takes the first N. The default 5 are translations and growth, which the demo's small
# network learns from any seed; telling rotation directions apart at 48 px depends on the seed
# (85-98% video top-1 over two seeds), so rotations come last.
MOTIONS = ("MoveLeft", "MoveRight", "MoveUp", "MoveDown", "Grow", "Shrink",
           "RotateClockwise", "RotateCounterclockwise")
CODECS = {".avi": "mpeg4", ".mp4": "libx264", ".mkv": "libx264", ".webm": "libvpx-vp9"}
# x264's rate control gives slightly different pixels from run to run; a constant quantiser does not.
# VP9's default two-pass-quality search takes 0.3-0.5 s a video; realtime mode is 6-10x faster at the same error.
CODEC_OPTIONS = {"libx264": {"qp": "18"}, "libvpx-vp9": {"deadline": "realtime", "cpu-used": "8"}}
FPS = 25
CLIPS_PER_GROUP = 4


def write_video(path, frames, fps=FPS):
    """Encode RGB uint8 frames (T x H x W x 3, even H and W) with the codec for the file's extension."""
    extension = os.path.splitext(path)[1].lower()
    if extension not in CODECS:
        raise ValueError(f"{path}: unsupported extension, use one of {sorted(CODECS)}")
    height, width = frames[0].shape[:2]
    with av.open(str(path), "w") as container:
        codec = CODECS[extension]
        stream = container.add_stream(codec, rate=fps, options=CODEC_OPTIONS.get(codec, {}))
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        stream.bit_rate = 4_000_000  # nearly lossless at these sizes, so motion survives compression
        for frame in frames:
            container.mux(stream.encode(av.VideoFrame.from_ndarray(np.ascontiguousarray(frame), format="rgb24")))
        container.mux(stream.encode())


def make_background(rng, size):
    """A smooth random colour field: a few random colours upsampled over the frame."""
    # Mid-range colours: the dark and bright stripes of the shape stand out on any background.
    coarse = rng.uniform(70, 185, (3, 3, 3)).astype(np.float32)
    return cv2.resize(coarse, (size, size), interpolation=cv2.INTER_CUBIC)


def render_clip(motion, size, n_frames, rng, background):
    """Frames (T x size x size x 3 uint8) of a random striped shape moving as `motion` says."""
    # The sprite: a rectangle, ellipse or triangle filled with stripes of a random dark and a random bright
    # colour, so its edges move with high contrast (what the network has to see) whatever the background.
    sprite_size = size // 2
    colours = np.stack([rng.uniform(0, 60, 3), rng.uniform(195, 255, 3)]).astype(np.float32)[rng.permutation(2)]
    # Stripes 2-3 per sprite: even at half scale in a 32 px frame they stay wider than the 3D CNN's stride-2
    # first layer samples, and wider than a frame's motion, so they never alias into the opposite direction.
    period = rng.uniform(0.25, 0.4) * sprite_size
    stripes = (np.arange(sprite_size) // period % 2).astype(int)
    texture = np.ascontiguousarray(np.broadcast_to(colours[stripes][None], (sprite_size, sprite_size, 3)))
    mask = np.zeros((sprite_size, sprite_size), np.float32)
    half, quarter = sprite_size // 2, sprite_size // 4
    shape = rng.integers(3)
    if shape == 0:
        cv2.rectangle(mask, (quarter // 2, quarter), (sprite_size - quarter // 2, sprite_size - quarter), 1, -1)
    elif shape == 1:
        cv2.ellipse(mask, (half, half), (half - 1, quarter + 1), 0, 0, 360, 1, -1)
    else:
        triangle = np.array([[half, 1], [sprite_size - 2, sprite_size - 2], [1, sprite_size - 2]], np.int32)
        cv2.fillPoly(mask, [triangle], 1)

    # Static pose, then the one parameter the class animates.
    angle = rng.uniform(0, 360)
    log_scale_phase = rng.uniform(0, 1)
    position = rng.uniform(0, size, 2)
    speed = rng.uniform(2, 3) * size / 64       # pixels per frame
    # Rotation and scaling move the shape's edges about as far per frame as the translations do.
    turn = rng.uniform(20, 30)                   # degrees per frame (under 60: a triangle never looks turned back)
    scale_period = rng.uniform(8, 12)            # frames per grow or shrink cycle
    direction = {"MoveLeft": (-1, 0), "MoveRight": (1, 0), "MoveUp": (0, -1), "MoveDown": (0, 1)}

    frames = np.empty((n_frames, size, size, 3), np.uint8)
    for t in range(n_frames):
        pose_angle, pose_phase, pose_position = angle, log_scale_phase, position
        if motion in direction:
            pose_position = position + speed * t * np.array(direction[motion])
        elif motion == "RotateClockwise":
            pose_angle = angle - turn * t  # OpenCV's positive angles turn counterclockwise on screen
        elif motion == "RotateCounterclockwise":
            pose_angle = angle + turn * t
        elif motion == "Grow":
            pose_phase = log_scale_phase + t / scale_period
        elif motion == "Shrink":
            pose_phase = log_scale_phase - t / scale_period
        scale = 0.5 * 2 ** (pose_phase % 1)  # log-uniform in [0.5, 1) whatever the frame
        # Draw at the frame centre plus the sub-pixel offset, then wrap the whole-pixel shift around the edges.
        whole = np.floor(pose_position).astype(int)
        fraction = pose_position - whole
        matrix = cv2.getRotationMatrix2D((sprite_size / 2, sprite_size / 2), pose_angle, scale)
        matrix[:, 2] += size / 2 - sprite_size / 2 + fraction
        layer = cv2.warpAffine(texture, matrix, (size, size), flags=cv2.INTER_LINEAR)
        alpha = cv2.warpAffine(mask, matrix, (size, size), flags=cv2.INTER_LINEAR)[..., None]
        shift = (whole[1] - size // 2, whole[0] - size // 2)
        layer, alpha = np.roll(layer, shift, (0, 1)), np.roll(alpha, shift, (0, 1))
        image = alpha * layer + (1 - alpha) * background + rng.normal(0, 4, background.shape)
        frames[t] = np.clip(image, 0, 255).round().astype(np.uint8)
    return frames


def make_dataset(dst, classes=5, videos_per_class=120, seed=0, size=48, frames=32,
                 containers=("avi", "mp4", "mkv", "webm")):
    """Write the videos and UCF-101 style split files under `dst`; return the video paths."""
    if not 1 <= classes <= len(MOTIONS):
        raise ValueError(f"classes must be between 1 and {len(MOTIONS)}, got {classes}")
    if size <= 0 or size % 2:
        raise ValueError(f"size must be positive and even (the codecs use 4:2:0 chroma), got {size}")
    if frames < 1:
        raise ValueError(f"frames must be at least 1, got {frames}")
    if videos_per_class <= CLIPS_PER_GROUP:
        raise ValueError(f"videos per class (--videos-per-class) must be at least {CLIPS_PER_GROUP + 1}: "
                         f"the first group of {CLIPS_PER_GROUP} clips is the test list, got {videos_per_class}")
    unknown = [c for c in containers if "." + c not in CODECS]
    if unknown:
        raise ValueError(f"unsupported containers {unknown}, use some of {[e[1:] for e in CODECS]}")
    n_groups = math.ceil(videos_per_class / CLIPS_PER_GROUP)
    n_test_groups = max(1, n_groups // 3)

    os.makedirs(os.path.join(dst, "splits"), exist_ok=True)
    paths, train_lines, test_lines = [], [], []
    progress = tqdm(total=classes * videos_per_class, desc="synthetic videos", unit="video")
    for label, name in enumerate(MOTIONS[:classes]):
        os.makedirs(os.path.join(dst, "videos", name), exist_ok=True)
        for index in range(videos_per_class):
            group, clip = index // CLIPS_PER_GROUP + 1, index % CLIPS_PER_GROUP + 1
            # Every class gets the same backgrounds, so a background says nothing about the class.
            background = make_background(np.random.default_rng((seed, group, clip)), size)
            clip_frames = render_clip(name, size, frames, np.random.default_rng((seed, label, group, clip)), background)
            extension = containers[len(paths) % len(containers)]
            relative = f"{name}/v_{name}_g{group:02d}_c{clip:02d}.{extension}"
            paths.append(os.path.join(dst, "videos", relative))
            write_video(paths[-1], clip_frames)
            if group <= n_test_groups:
                test_lines.append(relative)
            else:
                train_lines.append(f"{relative} {label + 1}")
            progress.update()
    progress.close()

    # UCF-101's split files use Windows line endings; keep them so readers are tested against the real thing.
    split_files = {"classInd.txt": [f"{i + 1} {name}" for i, name in enumerate(MOTIONS[:classes])],
                   "trainlist01.txt": train_lines, "testlist01.txt": test_lines}
    for file_name, lines in split_files.items():
        with open(os.path.join(dst, "splits", file_name), "w", newline="") as f:
            f.writelines(line + "\r\n" for line in lines)
    return paths


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m core.synthetic", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("dst", help="output folder (videos/ and splits/ are created inside)")
    parser.add_argument("--classes", type=int, default=5, help=f"number of classes, 1..{len(MOTIONS)}")
    parser.add_argument("--videos-per-class", type=int, default=120,
                        help="videos per class, at least 5 (a 3D CNN from scratch needs about a hundred to learn "
                             "the motions)")
    parser.add_argument("--seed", type=int, default=0, help="random seed; the same seed gives the same pixels")
    parser.add_argument("--size", type=int, default=48, help="frame height and width in pixels (even)")
    parser.add_argument("--frames", type=int, default=32, help="frames per video")
    parser.add_argument("--containers", default="avi,mp4,mkv,webm",
                        help="comma-separated containers to cycle through: avi, mp4, mkv, webm")
    args = parser.parse_args(argv)
    try:
        paths = make_dataset(args.dst, args.classes, args.videos_per_class, args.seed, args.size, args.frames,
                             tuple(args.containers.split(",")))
    except ValueError as error:
        parser.error(str(error))
    print(f"wrote {len(paths)} videos and split files to {args.dst}")


if __name__ == "__main__":
    main()
