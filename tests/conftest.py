import os
import sys

# MindSpore must be imported before torch or paddle in one process (see DESIGN.md).
import mindspore  # noqa: F401

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# The real UCF-101 clip (v_CricketShot_g04_c01, 79 frames, 224x224, 25 fps) lives in the repository so that the
# tests pass on a plain clone.
TEST_DATA = os.path.join(ROOT, "tests", "data")
CRICKET_GIF = os.path.join(TEST_DATA, "v_CricketShot_g04_c01_rgb.gif")
sys.path.insert(0, ROOT)
