"""A tiny frame dataset and config for training tests (kenshohara layout, written directly as JPEGs).

The task is deliberately easy: each class has its own colour cast (red, green or blue dominant) over
random noise, so a narrow 3D ResNet learns it in a few dozen SGD steps. The tests are about the
training machinery (optimizer, schedules, checkpoints, resume), not about how hard a task can be.
"""
import json
import os

import cv2
import numpy as np
import yaml

CLASSES = ("Red", "Green", "Blue")


def write_colour_dataset(root, train_per_class=4, val_per_class=2, size=32, n_frames=8, seed=0):
    """root/frames/<class>/<video_id>/image_00001.jpg + root/annotation.json; returns (frames, annotation)."""
    rng = np.random.default_rng(seed)
    database = {}
    for label, name in enumerate(CLASSES):
        for index in range(train_per_class + val_per_class):
            video_id = f"v_{name}_{index:02d}"
            subset = "training" if index < train_per_class else "validation"
            video_dir = os.path.join(root, "frames", name, video_id)
            os.makedirs(video_dir)
            for t in range(n_frames):
                image = rng.uniform(40, 160, (size, size, 3))
                image[..., label] += 80  # the class: one channel brighter
                cv2.imwrite(os.path.join(video_dir, f"image_{t + 1:05d}.jpg"),
                            cv2.cvtColor(image.astype(np.uint8), cv2.COLOR_RGB2BGR))
            database[video_id] = {"subset": subset, "annotations": {"label": name, "segment": [1, n_frames + 1]}}
    annotation = os.path.join(root, "annotation.json")
    with open(annotation, "w") as f:
        json.dump({"labels": list(CLASSES), "database": database}, f)
    return os.path.join(root, "frames"), annotation


def tiny_config(root, result_path, **overrides):
    """A YAML config for a 3D ResNet-10 of width 1/8 on 4 x 32 x 32 clips; returns its path."""
    frames, annotation = os.path.join(root, "frames"), os.path.join(root, "annotation.json")
    values = {"model": "resnet", "model_depth": 10, "resnet_widen_factor": 0.125, "n_classes": len(CLASSES),
              "video_path": frames, "annotation_path": annotation, "result_path": str(result_path),
              "sample_size": 32, "sample_duration": 4, "train_crop": "center", "mean_dataset": "0.5",
              "learning_rate": 0.05, "weight_decay": 1e-4, "lr_scheduler": "multistep",
              "multistep_milestones": [3], "n_epochs": 4, "batch_size": 4, "n_threads": 0, "checkpoint": 2,
              "n_val_samples": 1, "inference_stride": 4, "device": "cpu"}
    values.update(overrides)
    path = os.path.join(str(result_path) + ".yaml")
    with open(path, "w") as f:
        yaml.safe_dump(values, f)
    return path
