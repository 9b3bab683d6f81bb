"""Checkpoint conversion between PyTorch, PaddlePaddle and MindSpore (`python -m convert --help`)."""
from convert.checkpoint import Checkpoint, convert, read_checkpoint, read_state, replace_head, write_checkpoint
from convert.shapes import expected_shapes, infer_arch

__all__ = ["Checkpoint", "convert", "expected_shapes", "infer_arch", "read_checkpoint", "read_state",
           "replace_head", "write_checkpoint"]
