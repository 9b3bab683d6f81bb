"""python -m backends.torch.evaluate --config configs/X.yaml --resume_path save_N.pth [--mode rgb|flow|joint]"""
from core.cli import evaluate_main

if __name__ == "__main__":
    evaluate_main("torch", "backends.torch.engine")
