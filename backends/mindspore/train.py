"""python -m backends.mindspore.train --config configs/X.yaml [--set key=value ...]"""
import mindspore  # noqa: F401  (MindSpore must be imported before anything that loads oneDNN)

from backends.mindspore.engine import MindSporeEngine
from core.cli import train_main

if __name__ == "__main__":
    train_main("mindspore", MindSporeEngine)
