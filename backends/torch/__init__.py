"""PyTorch backend."""

# export.py writes these (DST extension -> the runtime that runs the file, convert/run_export.py).
EXPORT_TARGETS = {".onnx": "onnxruntime", ".torchscript": "torch", ".pt2": "torch"}
NATIVE_FORMAT = "pth"
