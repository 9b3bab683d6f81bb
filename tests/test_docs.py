"""Every config key is documented in the README and every CLI answers --help."""
import os
import subprocess
import sys

import pytest

from backends import BACKENDS
from core.config import SCHEMA, schema_table
from tests.conftest import ROOT

CLIS = ["core.extract_frames", "core.annotations", "core.synthetic", "core.flow", "core.fuse",
        "core.eval_accuracy", "core.config", "convert", "convert.compare", "convert.run_model",
        "convert.export", "convert.run_export", "bench.export",
        *(f"backends.{name}.{tool}" for name in BACKENDS for tool in ("train", "evaluate", "predict"))]


def test_every_config_key_is_in_the_readme():
    with open(os.path.join(ROOT, "README.md")) as f:
        readme = f.read()
    missing = [key for key in SCHEMA if f"`{key}`" not in readme]
    assert missing == []


# Runs a CLI's --help, then lists the frameworks the process imported.
HELP = """
import runpy, sys
sys.argv = [sys.argv[1], "--help"]
try:
    runpy.run_module(sys.argv[0], run_name="__main__", alter_sys=True)
except SystemExit as done:
    assert not done.code, done.code
print("frameworks:", sorted({m.split(".")[0] for m in sys.modules} & {"torch", "paddle", "mindspore"}))
"""


@pytest.mark.parametrize("module", CLIS)
def test_cli_help_answers_without_importing_a_framework(module):
    result = subprocess.run([sys.executable, "-c", HELP, module], cwd=ROOT, capture_output=True, text=True,
                            timeout=120)
    assert result.returncode == 0, result.stderr
    assert "usage:" in result.stdout
    assert result.stdout.strip().endswith("frameworks: []")


def test_readme_config_table_is_the_schema():
    with open(os.path.join(ROOT, "README.md")) as f:
        assert schema_table() in f.read()
