"""python -m backends.paddle.predict --resume_path CKPT VIDEO_OR_FOLDER ... [--output F.json|.csv] [--timeline DIR]"""
from backends.paddle.engine import build_predictor
from core.predict import predict_main

if __name__ == "__main__":
    predict_main("paddle", build_predictor)
