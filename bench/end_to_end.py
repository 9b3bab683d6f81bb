"""Training end to end: kenshohara's main.py route against `python -m backends.torch.train`, same frames.

    python -m bench.end_to_end [--epochs 10] [--repeats 2]

Both train the same narrow ResNet-10 (width 0.25, 2 classes) on the same 30
training and 6 validation videos (320 x 240 JPEG frames of the real clip),
16 x 112 x 112 clips, batch 8, 2 loader workers, SGD with his defaults
(lr 0.1, momentum 0.9, weight decay 1e-3, multistep), random resized crops
(scale 0.25-1, ratio 3/4-4/3) and flips, per-epoch validation with 3 clips per
video, a checkpoint at the last epoch; each route is one whole process, timed
by its wall clock (imports and model building included), the two alternated.

- kenshohara: his route written here from his published code (main.py
  main_worker / get_train_utils / get_val_utils, training.py train_epoch,
  validation.py val_epoch, datasets/videodataset.py and videodataset_multiclips.py,
  datasets/loader.py ImageLoaderPIL, spatial_transforms.py, temporal_transforms.py;
  commit 540a0ea): a torch DataLoader over per-frame PIL decoding and
  transforms, the torchvision transforms written with PIL and torch (no
  torchvision on CPU here), his per-batch printing and batch log. The model is
  the project's torch ResNet-10, which is his architecture.
- ours: `python -m backends.torch.train` with the equivalent config.
- ours_frame_cache: the same with `frame_cache` set (core.frame_cache); the
  cache is emptied before each of its runs, so every run fills it (a frame
  is decoded the first time a clip uses it) as a user's first training does.
- compute_floor: no loading at all: one process imports torch, builds the
  same model and optimizer and runs the same training steps and validation
  forwards (same batch shapes) on arrays already in memory, with the same
  checkpoint. No route that computes this model with torch on this machine
  can be faster, so kenshohara / compute_floor is the highest ratio any
  loading pipeline could reach here.
"""
import argparse
import json
import math
import os
import random
import shutil
import statistics
import subprocess
import sys
import time

import numpy as np

from bench.clip_loading import DATA as FRAMES_DATA
from bench.clip_loading import make_frames
from bench.common import write_result

DATA = os.path.join(os.path.dirname(os.path.abspath(__file__)), "data", "end_to_end")
N_TRAIN, N_VAL, LABELS = 30, 6, ["even", "odd"]
SETTINGS = {"model_depth": 10, "resnet_widen_factor": 0.25, "n_classes": 2, "sample_size": 112,
            "sample_duration": 16, "batch_size": 8, "n_threads": 2, "learning_rate": 0.1, "n_val_samples": 3,
            "train_crop": "random", "mean_dataset": "kinetics", "manual_seed": 1}


def make_dataset(root):
    """root/frames/<label>/<id> (links to the clip_loading frame folders) and root/annotation.json."""
    frames_root, _ = make_frames(FRAMES_DATA, 8)
    sources = sorted(os.path.join(frames_root, "CricketShot", name)
                     for name in os.listdir(os.path.join(frames_root, "CricketShot")))
    database = {}
    for index in range(N_TRAIN + N_VAL):
        video_id, label = f"v_{index:03d}", LABELS[index % 2]
        link = os.path.join(root, "frames", label, video_id)
        if not os.path.exists(link):
            os.makedirs(os.path.dirname(link), exist_ok=True)
            os.symlink(sources[index % len(sources)], link)
        n_frames = len([n for n in os.listdir(link) if n.startswith("image_")])
        database[video_id] = {"subset": "training" if index < N_TRAIN else "validation",
                              "annotations": {"label": label, "segment": [1, n_frames + 1]}}
    annotation = os.path.join(root, "annotation.json")
    with open(annotation, "w") as f:
        json.dump({"labels": LABELS, "database": database}, f)
    return os.path.join(root, "frames"), annotation


# ---- kenshohara's route (runs in its own process: python -m bench.end_to_end --kenshohara ...) ----------------

def kenshohara_main(frames_root, annotation, result_path, epochs):
    import torch
    from PIL import Image
    from torch.utils.data import DataLoader, Dataset
    from torch.utils.data.dataloader import default_collate

    from backends.torch.models import build_model
    from core.spatial import MEAN_STD

    mean, std = (torch.tensor(v).view(3, 1, 1) for v in MEAN_STD["kinetics"])
    size = SETTINGS["sample_size"]

    def load_frames(video_dir, indices):  # datasets/loader.py VideoLoader + ImageLoaderPIL
        images = []
        for i in indices:
            path = os.path.join(video_dir, f"image_{i:05d}.jpg")
            if os.path.exists(path):
                with open(path, "rb") as f, Image.open(f) as image:
                    images.append(image.convert("RGB"))
        return images

    def to_tensor_normalized(image):  # ToTensor, ScaleValue(1), Normalize
        tensor = torch.from_numpy(np.array(image)).permute(2, 0, 1).contiguous().float().div(255)
        return tensor.sub_(mean).div_(std)

    def loop_pad(indices, length):  # LoopPadding
        for index in indices:
            if len(indices) >= length:
                break
            indices.append(index)
        return indices

    def random_resized_box(width, height):  # torchvision RandomResizedCrop.get_params with his scale, ratio
        area = width * height
        for _ in range(10):
            target_area = area * random.uniform(0.25, 1.0)
            aspect = math.exp(random.uniform(math.log(0.75), math.log(1 / 0.75)))
            w, h = int(round(math.sqrt(target_area * aspect))), int(round(math.sqrt(target_area / aspect)))
            if 0 < w <= width and 0 < h <= height:
                top, left = random.randint(0, height - h), random.randint(0, width - w)
                return left, top, left + w, top + h
        return 0, 0, width, height

    def resize_center_crop(image):  # Resize(size) + CenterCrop(size)
        width, height = image.size
        if width <= height:
            image = image.resize((size, int(size * height / width)), Image.BILINEAR)
        else:
            image = image.resize((int(size * width / height), size), Image.BILINEAR)
        width, height = image.size
        top, left = int(round((height - size) / 2.0)), int(round((width - size) / 2.0))
        return image.crop((left, top, left + size, top + size))

    with open(annotation) as f:
        data = json.load(f)

    def samples(subset):
        return [(os.path.join(frames_root, entry["annotations"]["label"], video_id),
                 list(range(*entry["annotations"]["segment"])), LABELS.index(entry["annotations"]["label"]))
                for video_id, entry in data["database"].items() if entry["subset"] == subset]

    class TrainSet(Dataset):  # VideoDataset with TemporalRandomCrop and the training spatial transforms
        def __init__(self):
            self.data = samples("training")

        def __len__(self):
            return len(self.data)

        def __getitem__(self, index):
            video_dir, indices, label = self.data[index]
            begin = random.randint(0, max(0, len(indices) - 16 - 1))
            indices = loop_pad(indices[begin:min(begin + 16, len(indices))], 16)
            images = load_frames(video_dir, indices)
            box = random_resized_box(*images[0].size)  # randomize_parameters: once per clip
            flip = random.random() < 0.5
            clip = []
            for image in images:
                image = image.crop(box).resize((size, size), Image.BILINEAR)
                if flip:
                    image = image.transpose(Image.FLIP_LEFT_RIGHT)
                clip.append(to_tensor_normalized(image))
            return torch.stack(clip, 0).permute(1, 0, 2, 3), label

    class ValSet(Dataset):  # VideoDatasetMultiClips with TemporalEvenCrop(16, 3)
        def __init__(self):
            self.data = samples("validation")

        def __len__(self):
            return len(self.data)

        def __getitem__(self, index):
            video_dir, indices, label = self.data[index]
            stride = max(1, math.ceil((len(indices) - 1 - 16) / (3 - 1)))
            clips = []
            for begin in indices[::stride]:
                if len(clips) >= 3:
                    break
                window = list(range(begin, min(indices[-1] + 1, begin + 16)))
                images = load_frames(video_dir, loop_pad(window, 16))
                clips.append(torch.stack([to_tensor_normalized(resize_center_crop(i)) for i in images], 0)
                             .permute(1, 0, 2, 3))
            return clips, [label] * len(clips)

    def collate_clips(batch):  # videodataset_multiclips.collate_fn
        clips, targets = zip(*batch)
        return (default_collate([c for group in clips for c in group]),
                default_collate([t for group in targets for t in group]))

    def worker_init_fn(worker_id):
        seed = torch.initial_seed() % 2 ** 32
        random.seed(seed + worker_id)
        np.random.seed(seed + worker_id)

    random.seed(1)
    np.random.seed(1)
    torch.manual_seed(1)
    model = build_model("resnet10", n_classes=2, widen_factor=0.25)
    print(model)
    criterion = torch.nn.CrossEntropyLoss()
    workers = dict(num_workers=SETTINGS["n_threads"], pin_memory=True, worker_init_fn=worker_init_fn)
    train_loader = DataLoader(TrainSet(), batch_size=8, shuffle=True, **workers)
    val_loader = DataLoader(ValSet(), batch_size=8 // 3, shuffle=False, collate_fn=collate_clips, **workers)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9, dampening=0.0, weight_decay=1e-3)
    scheduler = torch.optim.lr_scheduler.MultiStepLR(optimizer, [50, 100, 150])
    os.makedirs(result_path, exist_ok=True)
    with open(os.path.join(result_path, "train_batch.log"), "w") as batch_log, \
            open(os.path.join(result_path, "train.log"), "w") as train_log, \
            open(os.path.join(result_path, "val.log"), "w") as val_log:
        for epoch in range(1, epochs + 1):
            model.train()
            losses, correct, seen = 0.0, 0, 0
            for i, (inputs, targets) in enumerate(train_loader):
                outputs = model(inputs)
                loss = criterion(outputs, targets)
                losses += loss.item() * len(targets)
                correct += (outputs.argmax(1) == targets).sum().item()
                seen += len(targets)
                optimizer.zero_grad()
                loss.backward()
                optimizer.step()
                batch_log.write(f"{epoch}\t{i + 1}\t{loss.item()}\t{optimizer.param_groups[0]['lr']}\n")
                print(f"Epoch: [{epoch}][{i + 1}/{len(train_loader)}]\tLoss {loss.item():.4f}")
            train_log.write(f"{epoch}\t{losses / seen}\t{correct / seen}\n")
            if epoch % 10 == 0 or epoch == epochs:
                torch.save({"epoch": epoch, "arch": "resnet-10", "state_dict": model.state_dict(),
                            "optimizer": optimizer.state_dict(), "scheduler": scheduler.state_dict()},
                           os.path.join(result_path, f"save_{epoch}.pth"))
            model.eval()
            losses, correct, seen = 0.0, 0, 0
            with torch.no_grad():
                for i, (inputs, targets) in enumerate(val_loader):
                    outputs = model(inputs)
                    losses += criterion(outputs, targets).item() * len(targets)
                    correct += (outputs.argmax(1) == targets).sum().item()
                    seen += len(targets)
                    print(f"Epoch: [{epoch}][{i + 1}/{len(val_loader)}]")
            val_log.write(f"{epoch}\t{losses / seen}\t{correct / seen}\n")
            scheduler.step()


def compute_floor_main(epochs):
    """The training and validation arithmetic of one run, with every batch already in memory."""
    import torch

    from backends.torch.models import build_model

    torch.manual_seed(1)
    model = build_model("resnet10", n_classes=2, widen_factor=0.25)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9, dampening=0.0, weight_decay=1e-3)
    clip = [3, SETTINGS["sample_duration"], SETTINGS["sample_size"], SETTINGS["sample_size"]]
    batch = SETTINGS["batch_size"]
    val_clips = N_VAL * SETTINGS["n_val_samples"]
    train_sizes = [min(batch, N_TRAIN - i) for i in range(0, N_TRAIN, batch)]
    val_sizes = [min(batch, val_clips - i) for i in range(0, val_clips, batch)]
    inputs = {n: torch.randn(n, *clip) for n in set(train_sizes + val_sizes)}
    targets = {n: torch.arange(n) % 2 for n in inputs}
    for epoch in range(1, epochs + 1):
        model.train()
        for n in train_sizes:
            loss = torch.nn.functional.cross_entropy(model(inputs[n]), targets[n])
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
        model.eval()
        with torch.no_grad():
            for n in val_sizes:
                torch.nn.functional.cross_entropy(model(inputs[n]), targets[n])
    torch.save({"state_dict": model.state_dict(), "optimizer": optimizer.state_dict()},
               os.path.join(DATA, "compute_floor.pth"))


# ---- the benchmark ------------------------------------------------------------------------------------------

def run_timed(command):
    start = time.perf_counter()
    subprocess.run(command, check=True, stdout=subprocess.DEVNULL)
    return time.perf_counter() - start


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m bench.end_to_end", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--repeats", type=int, default=2, help="runs of each route, alternated; medians reported")
    parser.add_argument("--kenshohara", nargs=3, metavar=("FRAMES", "ANNOTATION", "RESULTS"),
                        help=argparse.SUPPRESS)  # the process of his route
    parser.add_argument("--compute_floor", action="store_true", help=argparse.SUPPRESS)  # that route's process
    args = parser.parse_args(argv)
    if args.kenshohara:
        return kenshohara_main(*args.kenshohara, args.epochs)
    if args.compute_floor:
        return compute_floor_main(args.epochs)
    frames_root, annotation = make_dataset(DATA)
    cache = os.path.join(DATA, "frame_cache")
    configs = {}
    for name, extra in (("ours", {}), ("ours_frame_cache", {"frame_cache": cache})):
        configs[name] = os.path.join(DATA, f"config_{name}.json")  # YAML is a superset of JSON
        with open(configs[name], "w") as f:
            json.dump({"model": "resnet", **SETTINGS, "video_path": frames_root, "annotation_path": annotation,
                       "result_path": os.path.join(DATA, f"results_{name}"), "n_epochs": args.epochs,
                       "checkpoint": args.epochs, **extra}, f)
    routes = {name: [sys.executable, "-m", "backends.torch.train", "--config", config]
              for name, config in configs.items()}
    routes["kenshohara"] = [sys.executable, "-m", "bench.end_to_end", "--epochs", str(args.epochs), "--kenshohara",
                            frames_root, annotation, os.path.join(DATA, "results_kenshohara")]
    routes["compute_floor"] = [sys.executable, "-m", "bench.end_to_end", "--epochs", str(args.epochs),
                               "--compute_floor"]
    seconds = {name: [] for name in routes}
    for _ in range(args.repeats):
        for name, command in routes.items():
            shutil.rmtree(cache, ignore_errors=True)
            seconds[name].append(run_timed(command))
    medians = {name: statistics.median(values) for name, values in seconds.items()}
    ours_s, his_s = medians["ours"], medians["kenshohara"]
    write_result("end_to_end", {
        "model": "resnet10 width 0.25, 2 classes", "clips": [3, 16, 112, 112],
        "videos": {"training": N_TRAIN, "validation": N_VAL}, "frames": "320x240 JPEG q95",
        "epochs": args.epochs, "batch_size": 8, "workers": 2,
        "seconds": {name: [round(s, 2) for s in values] for name, values in seconds.items()},
        "median_seconds": medians,
        "goal": "kenshohara's wall clock >= 2.5x ours", "ratio_kenshohara_over_ours": his_s / ours_s,
        "ratio_kenshohara_over_ours_frame_cache": his_s / medians["ours_frame_cache"],
        "ratio_kenshohara_over_compute_floor": his_s / medians["compute_floor"]})


if __name__ == "__main__":
    main()
