"""Every config key is documented in the README and every CLI answers --help."""
import os
import subprocess
import sys

import pytest

from core.config import SCHEMA
from tests.conftest import ROOT

CLIS = ["core.extract_frames", "core.annotations", "core.synthetic", "core.flow", "core.fuse",
        "core.eval_accuracy", "core.config", "convert",
        "backends.torch.train", "backends.torch.evaluate",
        "backends.paddle.train", "backends.paddle.evaluate",
        "backends.mindspore.train", "backends.mindspore.evaluate",
        "backends.torch.predict", "backends.paddle.predict", "backends.mindspore.predict"]


def test_every_config_key_is_in_the_readme():
    with open(os.path.join(ROOT, "README.md")) as f:
        readme = f.read()
    missing = [key for key in SCHEMA if f"`{key}`" not in readme]
    assert missing == []


@pytest.mark.parametrize("module", CLIS)
def test_cli_help(module):
    result = subprocess.run([sys.executable, "-m", module, "--help"], cwd=ROOT, capture_output=True, text=True,
                            timeout=120)
    assert result.returncode == 0, result.stderr
    assert "usage:" in result.stdout
