"""Export a MindSpore model as MindIR (mindspore.export) and run it with mindspore.load + nn.GraphCell.

mindspore.export (mindspore/train/serialization.py, 2.10) compiles the network in graph mode with
jit_syntax_level STRICT and writes `<file_name>.mindir`. The input fixes channels, frames, height and
width; batch 'dynamic' passes Tensor(shape=[None, ...]). I3D computes its TF-"same" padding from the
input size: with a dynamic batch the compiler no longer treats the sizes as constants (x.shape, and
ops.shape after the first ops.pad, were tried), the max() in core.archs.same_padding stops it, and I3D
needs a fixed batch (`--batch N`). The ResNets and R(2+1)D export with a dynamic batch.
"""
import os
import re

import mindspore
import numpy as np
from mindspore import nn

from core.training import replace_atomically

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
TARGETS = {".mindir": "MindIR (mindspore.load + nn.GraphCell)"}
# MindSpore's traceback of the network code: "# 6 In file /path/i3d.py:42, 24~32" then the source line.
_CODE_FRAME = re.compile(r"^# \d+ In file (\S+?):([\d~]+)[^\n]*\n(.*)$", re.MULTILINE)


def _where(message):
    """' (at FILE:LINE: source)' of the innermost model code (backends/) MindSpore's message points at, or ''."""
    frames = _CODE_FRAME.findall(message)
    ours = [frame for frame in frames if f"{os.sep}backends{os.sep}" in frame[0]]
    if not (ours or frames):
        return ""
    file, line, source = (ours or frames)[-1]
    return f" (at {os.path.relpath(file, ROOT)}:{line}: {source.strip()})"


def export(model, clip_shape, dst, batch):
    """Write `model` for clips of shape (batch, *clip_shape) to `dst` (.mindir); batch: 'dynamic' or an int."""
    if not dst.lower().endswith(".mindir"):
        raise ValueError(f"{dst}: MindSpore exports {', '.join(TARGETS)}")
    model.set_train(False)
    if batch == "dynamic":
        example = mindspore.Tensor(shape=[None, *clip_shape], dtype=mindspore.float32)
    else:
        example = mindspore.Tensor(np.zeros((batch, *clip_shape), np.float32))

    def write(temporary):
        try:
            mindspore.export(model, example, file_name=temporary, file_format="MINDIR")
        except (TypeError, ValueError, RuntimeError) as error:
            message = str(error)
            hint = "; a fixed batch (--batch N) keeps every shape static" if batch == "dynamic" else ""
            raise RuntimeError(f"mindspore.export failed{_where(message)}: {message.strip().splitlines()[0]}"
                               f"{hint}") from None
    replace_atomically(dst, write)


def run_exported(path, clip):
    """Logits (numpy) of the MindIR file `path` on the numpy clip."""
    graph = nn.GraphCell(mindspore.load(path))
    return graph(mindspore.Tensor(np.ascontiguousarray(clip, dtype=np.float32))).asnumpy()
