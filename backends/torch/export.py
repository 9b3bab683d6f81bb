"""Export a PyTorch model for inference (ONNX, TorchScript, torch.export) and run the exported file.

Every target is traced from `torch.export.export` with a symbolic batch axis and the clip's channels,
frames, height and width fixed. Fixing them turns I3D's TF-"same" padding and its final pooling
(computed from the input size at run time) into constants: the legacy ONNX exporter cannot trace
those size computations itself (a pooling kernel made of `aten::size` outputs is "not constant").
An exported file therefore computes what the model computes at exactly that clip shape; each
runtime refuses another shape (onnxruntime: invalid dimensions; TorchScript: the guard below;
torch.export: its input-shape guards).

ONNX goes through the TorchScript-based exporter (`dynamo=False`): the torch.export-based one
needs the onnxscript package, which the deploy extra does not install.
"""
import os
import weakref
from typing import List

import torch

from core.onnx_predictor import build_onnx_predictor
from core.training import replace_atomically

TARGETS = {".onnx": "ONNX (onnxruntime)", ".torchscript": "TorchScript (torch.jit.load)",
           ".pt2": "torch.export ExportedProgram (torch.export.load)"}
# Opset 20 is the newest the TorchScript-based exporter writes (torch.onnx._constants).
ONNX_OPSET = 20
INPUT_NAME, OUTPUT_NAME = "clip", "logits"


class _ExportedGraph(torch.nn.Module):
    """Holds the graph of an ExportedProgram as a plain attribute: its module refuses .train(), which
    torch.onnx.export and torch.jit.trace call on every submodule."""

    def __init__(self, graph_module):
        super().__init__()
        object.__setattr__(self, "graph_module", graph_module)

    def forward(self, x):
        return self.graph_module(x)


class _ClipShapeGuard(torch.nn.Module):
    """Refuses clips of another (channels, frames, height, width) than the traced model was exported at."""

    def __init__(self, traced, clip_shape: List[int]):
        super().__init__()
        self.traced = traced
        self.clip_shape = clip_shape

    def forward(self, x):
        if list(x.shape[1:]) != self.clip_shape:
            raise RuntimeError("this model was exported for clips of shape (batch, {}), got {}".format(
                self.clip_shape, list(x.shape)))
        return self.traced(x)


# model -> {(clip_shape, batch): (program, example)}: the targets of one model share its trace.
_PROGRAMS = weakref.WeakKeyDictionary()


def _exported_program(model, clip_shape, batch):
    """torch.export of `model` in eval mode (and its example input); batch 'dynamic' makes axis 0 symbolic."""
    key = (tuple(clip_shape), batch)
    if key not in _PROGRAMS.setdefault(model, {}):
        model.eval().requires_grad_(False)
        example_batch = 2 if batch == "dynamic" else batch  # torch.export specialises a dynamic axis seen as 1
        example = torch.zeros(example_batch, *clip_shape)
        dynamic_shapes = ({0: torch.export.Dim("batch", min=1)},) if batch == "dynamic" else None
        _PROGRAMS[model][key] = torch.export.export(model, (example,), dynamic_shapes=dynamic_shapes), example
    return _PROGRAMS[model][key]


def export(model, clip_shape, dst, batch):
    """Write `model` for clips of shape (batch, *clip_shape) to `dst` (target from its extension).

    batch: 'dynamic' or a fixed int. The file appears atomically (written next to dst, then renamed).
    """
    extension = os.path.splitext(dst)[1].lower()
    if extension not in TARGETS:
        raise ValueError(f"{dst}: PyTorch exports {', '.join(TARGETS)}, not '{extension}'")
    program, example = _exported_program(model, clip_shape, batch)

    def write(temporary):
        if extension == ".pt2":
            torch.export.save(program, temporary)
        elif extension == ".torchscript":
            traced = torch.jit.trace(_ExportedGraph(program.module()), (example,), check_trace=False)
            torch.jit.save(torch.jit.script(_ClipShapeGuard(traced, list(clip_shape))), temporary)
        else:
            dynamic_axes = {INPUT_NAME: {0: "batch"}, OUTPUT_NAME: {0: "batch"}} if batch == "dynamic" else None
            torch.onnx.export(_ExportedGraph(program.module()), (example,), temporary, dynamo=False,
                              opset_version=ONNX_OPSET, input_names=[INPUT_NAME], output_names=[OUTPUT_NAME],
                              dynamic_axes=dynamic_axes)
            import onnx  # the deploy extra
            onnx.checker.check_model(temporary, full_check=True)
    replace_atomically(dst, write)


def run_exported(path, clip):
    """Logits (numpy) of the exported file `path` on the numpy clip, in the target's own runtime."""
    extension = os.path.splitext(path)[1].lower()
    if extension == ".onnx":
        return build_onnx_predictor(path)(clip)
    with torch.no_grad():
        if extension == ".pt2":
            return torch.export.load(path).module()(torch.from_numpy(clip)).numpy()
        return torch.jit.load(path, map_location="cpu")(torch.from_numpy(clip)).numpy()
