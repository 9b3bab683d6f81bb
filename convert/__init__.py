"""Checkpoint conversion between PyTorch, PaddlePaddle and MindSpore (`python -m convert --help`).

The library API is core.checkpoints' reader and writer, re-exported here for users of `convert`."""
from convert.checkpoint import convert
from core.archs import expected_shapes, infer_arch
from core.checkpoints import Checkpoint, read_checkpoint, read_state, replace_head, write_checkpoint

__all__ = ["Checkpoint", "convert", "expected_shapes", "infer_arch", "read_checkpoint", "read_state",
           "replace_head", "write_checkpoint"]
