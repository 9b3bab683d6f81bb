"""PyTorch backend."""
import os

# export.py writes these (DST extension -> the runtime that runs the file, convert/run_export.py).
EXPORT_TARGETS = {".onnx": "onnxruntime", ".torchscript": "torch", ".pt2": "torch"}
NATIVE_FORMAT = "pth"


# Read from the environment without the framework: core.cli prints its first line before importing it.
def launched():
    """(rank, world size, GPU index) of this process; (0, 1, 0) when not started by torchrun."""
    return tuple(int(os.environ.get(name, default)) for name, default in
                 (("RANK", 0), ("WORLD_SIZE", 1), ("LOCAL_RANK", 0)))
