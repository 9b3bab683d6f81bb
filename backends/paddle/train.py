"""python -m backends.paddle.train --config configs/X.yaml [--set key=value ...]

On N GPUs or processes: python -m paddle.distributed.launch --nproc_per_node N backends/paddle/train.py ...
(docs/distributed.md)
"""
from backends.paddle.engine import PaddleEngine, build_predictor
from core.cli import train_main

if __name__ == "__main__":
    train_main("paddle", PaddleEngine, build_predictor=build_predictor)
