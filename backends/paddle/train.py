"""python -m backends.paddle.train --config configs/X.yaml [--set key=value ...]"""
from backends.paddle.engine import PaddleEngine
from core.cli import train_main

if __name__ == "__main__":
    train_main("paddle", PaddleEngine)
