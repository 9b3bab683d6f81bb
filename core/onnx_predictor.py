"""Run an exported `.onnx` model with onnxruntime and numpy only: no training framework is imported.

    predict = build_onnx_predictor("r3d18.onnx")
    logits = predict(clips)          # clips: float32 (batch, channels, frames, height, width)

Same contract as the backends' build_predictor: numpy clips in, numpy logits (batch, n_classes)
out. A model exported with a fixed batch size N (`python -m convert.export --batch N`) is run on
chunks of N clips, the last one padded with zeros and its padding dropped from the logits.
"""
import os

import numpy as np


def _input_shape(session):
    """(batch or None when dynamic, (channels, frames, height, width)) of the model's single input."""
    shape = session.get_inputs()[0].shape
    batch = shape[0] if isinstance(shape[0], int) else None
    return batch, tuple(shape[1:])


def build_onnx_predictor(path, threads=0):
    """A function numpy clips -> numpy logits for the ONNX file `path` (threads 0: onnxruntime's default)."""
    try:
        import onnxruntime
    except ImportError:
        raise RuntimeError(f"{path}: running an .onnx model needs onnxruntime "
                           "(pip install -e '.[deploy]')") from None
    if not os.path.isfile(path):
        raise FileNotFoundError(f"{path}: no such ONNX file")
    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = threads
    try:
        session = onnxruntime.InferenceSession(path, options, providers=["CPUExecutionProvider"])
    except Exception as error:  # onnxruntime raises its own exception types for unreadable models
        raise ValueError(f"{path}: not a model onnxruntime can load ({str(error).splitlines()[0]})") from None
    input_name = session.get_inputs()[0].name
    batch, clip_shape = _input_shape(session)

    def predict(clips):
        clips = np.ascontiguousarray(clips, dtype=np.float32)
        if clips.ndim != 5 or clips.shape[1:] != clip_shape:
            raise ValueError(f"{path}: expects clips of shape (batch, {', '.join(map(str, clip_shape))}), "
                             f"got {clips.shape} (the model was exported at that clip shape)")
        if batch is None:
            return session.run(None, {input_name: clips})[0]
        outputs = []
        for start in range(0, len(clips), batch):
            chunk = clips[start:start + batch]
            padded = np.concatenate([chunk, np.zeros((batch - len(chunk), *clip_shape), np.float32)])
            outputs.append(session.run(None, {input_name: padded})[0][:len(chunk)])
        return np.concatenate(outputs)

    return predict
