"""Loader workers fork after OpenCV's thread pool has run in the parent (TV-L1 in predict --mode joint, or any
parallel OpenCV call): the workers still load. Without care the children's first OpenCV call waits forever on
the pool's copied locks (the full suite hung there once)."""
import subprocess
import sys

from tests.conftest import ROOT

SCRIPT = """
import cv2, numpy as np
from core.flow import flow_estimator
from core.loader import BatchLoader

class Frames:
    def set_epoch(self, epoch):
        pass
    def __len__(self):
        return 8
    def __getitem__(self, index):
        image = np.full((240, 320, 3), index, np.uint8)
        return cv2.resize(image, (112, 112), interpolation=cv2.INTER_AREA).astype(np.float32), index

gray = np.random.default_rng(0).integers(0, 256, (96, 128), dtype=np.uint8)
flow_estimator("tvl1")(gray, np.roll(gray, 2, axis=1))  # OpenCV's thread pool runs in this process
cv2.GaussianBlur(np.zeros((1000, 1000), np.float32), (31, 31), 5)
with BatchLoader(Frames(), 4, n_workers=2) as loader:
    print(sorted(int(i) for _, labels in loader for i in labels))
"""


def test_workers_fork_safely_after_opencv_threads_ran():
    done = subprocess.run([sys.executable, "-c", SCRIPT], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.split("\n")[-2] == str(list(range(8)))
