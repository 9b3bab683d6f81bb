"""python -m backends.torch.train --config configs/X.yaml [--set key=value ...]

On N GPUs or processes: torchrun --nproc_per_node N -m backends.torch.train ... (docs/distributed.md)
"""
from backends.torch.engine import TorchEngine, build_predictor
from core.cli import train_main

if __name__ == "__main__":
    train_main("torch", TorchEngine, build_predictor=build_predictor)
