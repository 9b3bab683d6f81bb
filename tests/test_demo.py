"""demo.sh end to end on a smaller synthetic set, with each backend, in a subprocess."""
import os
import re
import subprocess
import sys

import pytest

from backends import BACKENDS, native_format

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SUFFIXES = {name: native_format(name) for name in BACKENDS}


@pytest.fixture(scope="module")
def demo_dir(tmp_path_factory):
    """One synthetic set for the three runs: demo.sh writes it once and reuses it (results/<backend> apart)."""
    return tmp_path_factory.mktemp("demo")


@pytest.mark.parametrize("backend", SUFFIXES)
def test_demo_trains_a_model_that_tells_motions_apart(demo_dir, backend):
    # Two classes (MoveLeft, MoveRight) x 60 videos and 10 epochs: the demo's model and clips, in about a minute.
    env = dict(os.environ, DEMO_DIR=str(demo_dir), PYTHON=sys.executable,
               DEMO_SYNTHETIC="--classes 2 --videos-per-class 60")
    result = subprocess.run(["bash", os.path.join(ROOT, "demo.sh"), backend,
                             "--set", "n_classes=2", "--set", "n_epochs=10", "--set", "checkpoint=5"],
                            env=env, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]

    results = demo_dir / "results" / backend
    suffix = SUFFIXES[backend]
    checkpoints = [f"save_5.{suffix}", f"save_10.{suffix}"] + [f"save_10.{s}" for s in SUFFIXES.values() if s != suffix]
    for name in ["val.json", "scores_rgb.npz", "train.log", "val.log", "curves.png"] + checkpoints:
        assert (results / name).is_file(), name
    # Chance is 0.5 and a model that does not see the motion stays near it.
    last_line = result.stdout.strip().splitlines()[-2]
    accuracy = float(re.search(r"video top-1 ([0-9.]+)", last_line).group(1))
    assert accuracy >= 0.8, result.stdout[-3000:]
