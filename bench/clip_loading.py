"""Training-clip loading: ours (core.datasets.VideoDataset) vs a per-frame PIL pipeline like kenshohara's.

    python -m bench.clip_loading [--videos 8] [--epochs 4] [--repeats 5]

Both build 16 x 112 x 112 training clips from 320 x 240 JPEG frames in one
process: a random temporal crop of 16 frames, then a multi-scale corner crop
resized to 112 x 112, a random horizontal flip, values / 255 and mean/std
normalisation, as float32 C x T x H x W.

- ours: VideoDataset with build_spatial / build_temporal of a config with
  train_crop: corner (kenshohara's default), i.e. exactly what training uses,
  with one decoding thread (cv2.setNumThreads(1), as in core.loader's worker
  processes). ours_2_threads: the same with core.frames' pool of 2 decoding
  threads, as when clips are loaded in the main process of a 2-core machine;
  it gains only where the second core is idle.
- ours_frame_cache: the same with frame_cache set (core.frame_cache), once
  every frame has been decoded into the cache (one pass over all frames
  first, timed on its own as frame_cache_fill, in frames per CPU second).
- baseline: kenshohara's route written with PIL and numpy: per frame
  Image.open + convert('RGB'), crop + resize(BILINEAR), flip, np.asarray / 255
  (ToTensor), normalise; then stack the frames.

- video: the same training clips with frame_source: video, decoded from
  an .mp4 of the same 320 x 240 frames (libx264, qp 18, a keyframe every
  16 frames, about what UCF-101's and Kinetics' files have), with PyAV's
  AUTO threading; video_gop250: x264's default keyframe interval (one
  keyframe in these 79 frames: a clip decodes from the first frame).

The frames are the real UCF-101 clip resized to 320 x 240 and saved as JPEG
(quality 95, as core.extract_frames writes them), in --videos folders.
Besides clips per wall-clock second, clips per CPU second of the process
(all its threads) are reported.
"""
import argparse
import json
import os
import shutil
import time

import av
import cv2
import numpy as np
from PIL import Image
from tqdm import tqdm

from bench.common import CRICKET_GIF, median_rate, timed, write_result
from core.config import load_config
from core.datasets import VideoDataset
from core.frame_cache import FrameCache
from core.frames import read_rgb_frames
from core.spatial import CORNER_CROP_POSITIONS, CORNER_CROP_SCALES, MEAN_STD, build_spatial
from core.temporal import build_temporal
from core.video import iter_frames

DATA = os.path.join(os.path.dirname(os.path.abspath(__file__)), "data", "clip_loading")
SIZE, DURATION = 112, 16


def make_frames(root, n_videos):
    """root/frames/CricketShot/v_<i>/image_00001.jpg (320 x 240) and root/annotation.json."""
    annotation = os.path.join(root, f"annotation_{n_videos}.json")
    if os.path.exists(annotation):
        return os.path.join(root, "frames"), annotation
    frames = [cv2.resize(f, (320, 240), interpolation=cv2.INTER_LINEAR)[..., ::-1] for f in iter_frames(CRICKET_GIF)]
    database = {}
    for v in range(n_videos):
        video_dir = os.path.join(root, "frames", "CricketShot", f"v_{v:03d}")
        os.makedirs(video_dir, exist_ok=True)
        for i, frame in enumerate(frames, 1):
            cv2.imwrite(os.path.join(video_dir, f"image_{i:05d}.jpg"), frame, [cv2.IMWRITE_JPEG_QUALITY, 95])
        database[f"v_{v:03d}"] = {"subset": "training",
                                  "annotations": {"label": "CricketShot", "segment": [1, len(frames) + 1]}}
    with open(annotation, "w") as f:
        json.dump({"labels": ["CricketShot"], "database": database}, f)
    return os.path.join(root, "frames"), annotation


def make_video_files(root, n_videos, keyframe_interval):
    """root/videos_g<N>/CricketShot/v_<i>.mp4 of the same frames (frame_source: video)."""
    frames = [cv2.resize(f, (320, 240), interpolation=cv2.INTER_LINEAR) for f in iter_frames(CRICKET_GIF)]
    videos = os.path.join(root, f"videos_g{keyframe_interval}")
    for v in range(n_videos):
        path = os.path.join(videos, "CricketShot", f"v_{v:03d}.mp4")
        if not os.path.exists(path):
            os.makedirs(os.path.dirname(path), exist_ok=True)
            with av.open(path, "w") as container:
                stream = container.add_stream("libx264", rate=25, options={"qp": "18", "g": str(keyframe_interval)})
                stream.width, stream.height, stream.pix_fmt = 320, 240, "yuv420p"
                for frame in frames:
                    container.mux(stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")))
                container.mux(stream.encode())
    return videos


class PilClips:
    """kenshohara's training clip: per-frame PIL decode and transforms, numpy instead of torch."""

    def __init__(self, video_dirs, n_frames, seed=0):
        self.video_dirs, self.n_frames, self.seed = video_dirs, n_frames, seed
        mean, std = MEAN_STD["kinetics"]
        self.mean = np.asarray(mean, np.float32)[:, None, None]
        self.std = np.asarray(std, np.float32)[:, None, None]

    def frame(self, path, box, flip):
        with open(path, "rb") as f, Image.open(f) as image:
            image = image.convert("RGB")
        image = image.crop(box).resize((SIZE, SIZE), Image.BILINEAR)
        if flip:
            image = image.transpose(Image.FLIP_LEFT_RIGHT)
        tensor = np.asarray(image, np.float32).transpose(2, 0, 1) / 255  # ToTensor
        return (tensor - self.mean) / self.std                            # Normalize

    def __getitem__(self, index):
        rng = np.random.default_rng([self.seed, index])
        n = self.n_frames[index]
        begin = int(rng.integers(0, max(0, n - DURATION - 1) + 1))
        indices = [begin + (i % min(DURATION, n)) + 1 for i in range(DURATION)]
        # MultiScaleCornerCrop.randomize_parameters, then RandomHorizontalFlip's draw.
        scale = CORNER_CROP_SCALES[rng.integers(len(CORNER_CROP_SCALES))]
        position = CORNER_CROP_POSITIONS[rng.integers(len(CORNER_CROP_POSITIONS))]
        flip = rng.random() < 0.5
        width, height = Image.open(os.path.join(self.video_dirs[index], "image_00001.jpg")).size
        crop = int(min(width, height) * scale)
        left, top = {"c": ((width - crop) // 2, (height - crop) // 2), "tl": (0, 0), "tr": (width - crop, 0),
                     "bl": (0, height - crop), "br": (width - crop, height - crop)}[position]
        box = (left, top, left + crop, top + crop)
        frames = [self.frame(os.path.join(self.video_dirs[index], f"image_{i:05d}.jpg"), box, flip)
                  for i in indices]
        return np.stack(frames, 1), 0


def ours(frames_root, annotation, frame_source="frames", frame_cache=None):
    config = load_config(None, [f"video_path={frames_root}", f"annotation_path={annotation}", "train_crop=corner",
                                f"sample_size={SIZE}", f"sample_duration={DURATION}", f"frame_source={frame_source}"])
    spatial = build_spatial(config, train=True)
    spatial.reduced_decoding = frame_source == "frames" and frame_cache is None  # as core.datasets sets it
    return VideoDataset(annotation, frames_root, "training", spatial, build_temporal(config, train=True),
                        seed=config.manual_seed, frame_source=frame_source, frame_cache=frame_cache)


def fill_cache(dataset):
    """Decode every frame of every video into the dataset's frame cache; (frames, CPU seconds)."""
    cv2.setNumThreads(1)
    cpu_start = time.process_time()
    for index in range(len(dataset)):
        read_rgb_frames(dataset.video_dirs[index], dataset.frame_indices(index), cache=dataset.frame_cache)
    return sum(dataset.n_frames), time.process_time() - cpu_start


def load_all(dataset, n_videos, epochs):
    for epoch in range(epochs):
        for index in range(n_videos):
            clip, _ = dataset[index]
    assert clip.shape == (3, DURATION, SIZE, SIZE) and clip.dtype == np.float32, clip.shape


def reduced_decoding_error(dataset, n_videos):
    """Mean |ours - ours decoding at full resolution| over the clips of one epoch, in pixel levels of 255."""
    _, std = MEAN_STD["kinetics"]
    to_levels = np.asarray(std, np.float32)[:, None, None, None] * 255
    errors = []
    for index in range(n_videos):
        dataset.spatial.reduced_decoding = True
        reduced = dataset[index][0]
        dataset.spatial.reduced_decoding = False
        full = dataset[index][0]
        errors.append(float(np.mean(np.abs(reduced - full) * to_levels)))
    dataset.spatial.reduced_decoding = True
    return float(np.mean(errors))


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m bench.clip_loading", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--videos", type=int, default=8, help="frame folders (79 frames each)")
    parser.add_argument("--epochs", type=int, default=4, help="passes over the videos per timed run")
    parser.add_argument("--repeats", type=int, default=5, help="timed runs of each route; the median is reported")
    args = parser.parse_args(argv)
    frames_root, annotation = make_frames(DATA, args.videos)
    dataset = ours(frames_root, annotation)
    cache_root = os.path.join(DATA, "frame_cache")
    shutil.rmtree(cache_root, ignore_errors=True)
    cached = ours(frames_root, annotation, frame_cache=FrameCache(cache_root))
    filled_frames, fill_seconds = fill_cache(cached)
    # name -> (dataset, OpenCV threads: core.frames decodes with a pool of that many)
    routes = {"ours": (dataset, 1), "ours_2_threads": (dataset, 2), "ours_frame_cache": (cached, 1),
              "pil": (PilClips(dataset.video_dirs, dataset.n_frames), 1),
              "video": (ours(make_video_files(DATA, args.videos, 16), annotation, "video"), 1),
              "video_gop250": (ours(make_video_files(DATA, args.videos, 250), annotation, "video"), 1)}
    seconds = {name: [] for name in routes}
    cpu_seconds = {name: [] for name in routes}
    for _ in tqdm(range(args.repeats), desc="repeats"):
        for name, (route, threads) in routes.items():
            cv2.setNumThreads(threads)
            cpu_start = time.process_time()
            seconds[name].append(timed(lambda: load_all(route, args.videos, args.epochs))[0])
            cpu_seconds[name].append(time.process_time() - cpu_start)
    n_clips = args.videos * args.epochs
    rates = {name: median_rate(s, n_clips) for name, s in seconds.items()}
    cpu_rates = {name: median_rate(s, n_clips) for name, s in cpu_seconds.items()}
    write_result("clip_loading", {
        "clip": [3, DURATION, SIZE, SIZE], "frames": "320x240 JPEG q95", "clips_per_run": n_clips,
        "repeats": args.repeats, "clips_per_second": rates, "clips_per_cpu_second": cpu_rates,
        "goal": "ours >= 3x the PIL pipeline",
        "ratio_ours_over_pil": rates["ours"]["median"] / rates["pil"]["median"],
        "ratio_ours_2_threads_over_pil": rates["ours_2_threads"]["median"] / rates["pil"]["median"],
        "cpu_ratio_ours_over_pil": cpu_rates["ours"]["median"] / cpu_rates["pil"]["median"],
        "ratio_ours_frame_cache_over_pil": rates["ours_frame_cache"]["median"] / rates["pil"]["median"],
        "cpu_ratio_ours_frame_cache_over_pil": cpu_rates["ours_frame_cache"]["median"] / cpu_rates["pil"]["median"],
        "frame_cache_fill_frames_per_cpu_second": filled_frames / fill_seconds,
        "frame_cache_bytes_per_frame": os.path.getsize(cached.frame_cache.entry_path(
            os.path.join(cached.video_dirs[0], "image_00001.jpg"), "rgb")),
        "ratio_video_over_ours": rates["video"]["median"] / rates["ours"]["median"],
        "cpu_ratio_video_over_ours": cpu_rates["video"]["median"] / cpu_rates["ours"]["median"],
        "reduced_decoding_mean_abs_error_of_255": reduced_decoding_error(dataset, args.videos)})


if __name__ == "__main__":
    main()
