"""python -m backends.torch.predict --resume_path CKPT VIDEO_OR_FOLDER ... [--output F.json|.csv] [--timeline DIR]"""
from core.predict import predict_main

if __name__ == "__main__":
    predict_main("torch", "backends.torch.engine")
