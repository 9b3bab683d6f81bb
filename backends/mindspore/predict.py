"""python -m backends.mindspore.predict --resume_path CKPT VIDEO_OR_FOLDER ... [--output F.json|.csv] [--timeline DIR]"""
from core.predict import predict_main

if __name__ == "__main__":
    predict_main("mindspore", "backends.mindspore.engine")
