import importlib.abc
import os
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# The real UCF-101 clip (v_CricketShot_g04_c01, 79 frames, 224x224, 25 fps) lives in the repository so that the
# tests pass on a plain clone.
TEST_DATA = os.path.join(ROOT, "tests", "data")
CRICKET_GIF = os.path.join(TEST_DATA, "v_CricketShot_g04_c01_rgb.gif")
sys.path.insert(0, ROOT)


class MindSporeFirst(importlib.abc.MetaPathFinder):
    """In one process `import mindspore` must come before torch or paddle (DESIGN.md). Tests that use them
    get mindspore imported just before the first of the two; tests of core import no framework at all."""

    def find_spec(self, name, path=None, target=None):
        if name in ("torch", "paddle") and "mindspore" not in sys.modules:
            sys.meta_path.remove(self)
            import mindspore  # noqa: F401
        return None


sys.meta_path.insert(0, MindSporeFirst())
