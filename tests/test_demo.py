"""demo.sh end to end on a smaller synthetic set with the torch backend, in a subprocess."""
import os
import re
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def test_demo_trains_a_model_that_tells_motions_apart(tmp_path):
    # Two classes (MoveLeft, MoveRight) x 60 videos and 10 epochs: the demo's model and clips, in about a minute.
    env = dict(os.environ, DEMO_DIR=str(tmp_path), PYTHON=sys.executable,
               DEMO_SYNTHETIC="--classes 2 --videos-per-class 60")
    result = subprocess.run(["bash", os.path.join(ROOT, "demo.sh"), "torch",
                             "--set", "n_classes=2", "--set", "n_epochs=10", "--set", "checkpoint=5"],
                            env=env, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]

    results = tmp_path / "results" / "torch"
    for name in ("val.json", "scores_rgb.npz", "train.log", "val.log", "curves.png", "save_5.pth", "save_10.pth",
                 "save_10.pdparams", "save_10.ckpt"):
        assert (results / name).is_file(), name
    # Chance is 0.5 and a model that does not see the motion stays near it (this run reaches about 0.9).
    last_line = result.stdout.strip().splitlines()[-2]
    accuracy = float(re.search(r"video top-1 ([0-9.]+)", last_line).group(1))
    assert accuracy >= 0.8, result.stdout[-3000:]
