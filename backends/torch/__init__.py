"""PyTorch backend."""

NATIVE_FORMAT = "pth"
