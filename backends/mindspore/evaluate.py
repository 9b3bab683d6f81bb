"""python -m backends.mindspore.evaluate --config configs/X.yaml --resume_path save_N.ckpt [--mode rgb|flow|joint]"""
import mindspore  # noqa: F401  (MindSpore must be imported before anything that loads oneDNN)

from backends.mindspore.engine import build_predictor
from core.cli import evaluate_main

if __name__ == "__main__":
    evaluate_main("mindspore", build_predictor)
