"""python -m backends.mindspore.train --config configs/X.yaml [--set key=value ...]

On N devices or processes: msrun --worker_num N --local_worker_num N --join True backends/mindspore/train.py ...
(docs/distributed.md)
"""
from core.cli import train_main

if __name__ == "__main__":
    train_main("mindspore", "backends.mindspore.engine")
