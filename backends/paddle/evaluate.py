"""python -m backends.paddle.evaluate --config configs/X.yaml --resume_path save_N.pdparams [--mode rgb|flow|joint]"""
from core.cli import evaluate_main

if __name__ == "__main__":
    evaluate_main("paddle", "backends.paddle.engine")
