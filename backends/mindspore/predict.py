"""python -m backends.mindspore.predict --resume_path CKPT VIDEO_OR_FOLDER ... [--output F] [--timeline DIR]"""
import mindspore  # noqa: F401  (MindSpore must be imported before anything that loads oneDNN)

from backends.mindspore.engine import build_predictor
from core.predict import predict_main

if __name__ == "__main__":
    predict_main("mindspore", build_predictor)
