"""Multi-view testing (MMAction2's evenly spaced clips x three crops, #20) scores the same in every backend.

The views are cut once in core (core.datasets.evaluation_set with n_inference_clips and inference_crop three),
each backend scores them, and a video's score is the mean of its views' softmax (MMAction2's
average_clips='prob'), as core.evaluation computes it.
"""
import json

import cv2
import numpy as np

from backends import BACKENDS
from convert.compare import random_state
from core import metrics
from core.config import load_config
from core.datasets import evaluation_set
from tests.parity.run_backend import run_backends

KWARGS = dict(n_classes=3, widen_factor=0.125)


def test_multi_view_scores_agree_across_backends(tmp_path):
    rng = np.random.default_rng(0)
    database = {}
    for video_id, n_frames in (("long", 9), ("short", 3)):  # "short" is shorter than a clip: looped
        video_dir = tmp_path / "frames" / "a" / video_id
        video_dir.mkdir(parents=True)
        for t in range(1, n_frames + 1):
            cv2.imwrite(str(video_dir / f"image_{t:05d}.jpg"), rng.integers(0, 256, (48, 64, 3), dtype=np.uint8))
        database[video_id] = {"subset": "validation", "annotations": {"label": "a", "segment": [1, n_frames + 1]}}
    (tmp_path / "annotation.json").write_text(json.dumps({"labels": ["a", "b", "c"], "database": database}))
    config = load_config(None, [f"video_path={tmp_path / 'frames'}", f"annotation_path={tmp_path / 'annotation.json'}",
                                "sample_size=48", "sample_duration=4", "n_classes=3", "n_inference_clips=3",
                                "inference_crop=three"])
    dataset = evaluation_set(config)
    views = np.stack([dataset[i][0] for i in range(len(dataset))])
    video_index = np.array([dataset[i][2] for i in range(len(dataset))])
    assert views.shape == (2 * 3 * 3, 3, 4, 48, 48)
    state = random_state("resnet10", seed=0, **KWARGS)
    state["fc.weight"] = state["fc.weight"] * 20  # decisive scores, not all near 1/3
    results = run_backends(BACKENDS, "forward", {"resnet10": ("resnet10", KWARGS)}, {"resnet10": state}, views,
                           str(tmp_path))
    scores = {backend: metrics.video_scores(metrics.softmax(out["resnet10/logits"].astype(np.float64)), video_index, 2)
              for backend, out in results.items()}
    reference = scores[BACKENDS[0]]
    assert np.ptp(reference, axis=1).min() > 0.05  # the videos' scores are far from uniform
    assert np.ptp(metrics.softmax(results[BACKENDS[0]]["resnet10/logits"].astype(np.float64))[:9], axis=0).max() > 1e-3
    for backend, video_scores in scores.items():
        assert np.abs(video_scores - reference).max() <= 1e-4, backend
