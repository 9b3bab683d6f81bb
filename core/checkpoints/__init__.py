"""The one checkpoint reader (and writer) of the project, framework-free.

Every file the project reads goes through here: `convert`, pretrained weights, resumed training
checkpoints, evaluation. Formats (formats.py) turn a file into a tree of numpy arrays without running
code (.pth through torch.load(weights_only=True), pickles through core.safe_pickle, .ckpt streamed by
ckpt.py); layouts (layouts.py) rename community trees into the neutral {name: array} of core.state_dict;
reader.py checks the result against the architecture's shapes (core.archs).
"""
from core.checkpoints.reader import (Checkpoint, NotATrainingCheckpoint, TrainingCheckpoint, float32_state,
                                     read_checkpoint, read_state, read_training_checkpoint, replace_head,
                                     write_checkpoint)

__all__ = ["Checkpoint", "NotATrainingCheckpoint", "TrainingCheckpoint", "float32_state", "read_checkpoint",
           "read_state", "read_training_checkpoint", "replace_head", "write_checkpoint"]
