import os
import sys

# MindSpore must be imported before torch or paddle in one process (see DESIGN.md).
import mindspore  # noqa: F401

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SHARED_DATA = os.path.join(os.path.dirname(ROOT), "shared", "data")
CRICKET_GIF = os.path.join(SHARED_DATA, "v_CricketShot_g04_c01_rgb.gif")
sys.path.insert(0, ROOT)
