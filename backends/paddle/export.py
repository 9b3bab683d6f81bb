"""Export a Paddle model as a Paddle Inference model (paddle.jit.save) and run it with paddle.inference.

Paddle 3.3 saves in its PIR format: `PREFIX.json` (the program; paddle/jit/pir_translated_layer.py
PIR_INFER_MODEL_SUFFIX) and `PREFIX.pdiparams` (the weights), so the target is named by its `.json`
file and the weights go next to it. The input spec fixes channels, frames, height and width (batch
'dynamic' leaves axis 0 open): I3D's TF-"same" padding and final pooling are computed from the input
size while the program is traced, so they become constants of that clip shape.
"""
import os

import numpy as np
import paddle
from paddle import inference

from core.training import replace_atomically

TARGETS = {".json": "Paddle Inference (paddle.inference)"}
PARAMS_SUFFIX = ".pdiparams"
INPUT_NAME = "clip"


def export(model, clip_shape, dst, batch):
    """Write `model` for clips of shape (batch, *clip_shape) to `dst` (.json) and its .pdiparams.

    batch: 'dynamic' or a fixed int. The weights are moved into place first, then the .json
    (the file a reader opens), each by a rename.
    """
    extension = os.path.splitext(dst)[1].lower()
    if extension not in TARGETS:
        raise ValueError(f"{dst}: Paddle exports {', '.join(TARGETS)} (+ {PARAMS_SUFFIX}), not '{extension}'")
    model.eval()
    spec = paddle.static.InputSpec([None if batch == "dynamic" else batch, *clip_shape], "float32", INPUT_NAME)

    def write(temporary):
        temporary_prefix = os.path.splitext(temporary)[0]
        paddle.jit.save(model, temporary_prefix, input_spec=[spec])
        os.replace(temporary_prefix + PARAMS_SUFFIX, os.path.splitext(dst)[0] + PARAMS_SUFFIX)
    replace_atomically(dst, write)


def run_exported(path, clip):
    """Logits (numpy) of the Paddle Inference model `path` (.json, with its .pdiparams) on the numpy clip."""
    config = inference.Config(path, os.path.splitext(path)[0] + PARAMS_SUFFIX)
    config.disable_gpu()
    predictor = inference.create_predictor(config)
    clip_input = predictor.get_input_handle(predictor.get_input_names()[0])
    clip_input.reshape(clip.shape)
    clip_input.copy_from_cpu(np.ascontiguousarray(clip, dtype=np.float32))
    predictor.run()
    return predictor.get_output_handle(predictor.get_output_names()[0]).copy_to_cpu()
