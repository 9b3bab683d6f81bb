import importlib.abc
import os
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SHARED_DATA = os.path.join(os.path.dirname(ROOT), "shared", "data")
CRICKET_GIF = os.path.join(SHARED_DATA, "v_CricketShot_g04_c01_rgb.gif")
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
