"""python -m backends.mindspore.evaluate --config configs/X.yaml --resume_path save_N.ckpt [--mode rgb|flow|joint]"""
from core.cli import evaluate_main

if __name__ == "__main__":
    evaluate_main("mindspore", "backends.mindspore.engine")
