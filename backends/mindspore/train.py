"""python -m backends.mindspore.train --config configs/X.yaml [--set key=value ...]

On N devices or processes: msrun --worker_num N --local_worker_num N --join True backends/mindspore/train.py ...
(docs/distributed.md)
"""
import mindspore  # noqa: F401  (MindSpore must be imported before anything that loads oneDNN)

from backends.mindspore.engine import MindSporeEngine, build_predictor
from core.cli import train_main

if __name__ == "__main__":
    train_main("mindspore", MindSporeEngine, build_predictor=build_predictor)
