""".ci/run runs exactly the README's test command and fails when pytest ran no test (exit 5)."""
import os
import re
import shutil
import subprocess

from tests.conftest import ROOT


def run_ci(tmp_path, readme):
    (tmp_path / ".ci").mkdir(exist_ok=True)
    shutil.copy(os.path.join(ROOT, ".ci", "run"), tmp_path / ".ci" / "run")
    (tmp_path / "README.md").write_text(readme)
    return subprocess.run(["bash", str(tmp_path / ".ci" / "run")], capture_output=True, text=True, timeout=60)


def readme_with(command):
    return f"# x\n\n<!-- demo command -->\n```\necho demo\n```\n\n<!-- test command -->\n```\n{command}\n```\n\n```\nlater block\n```\n"


def test_ci_runs_the_readme_test_command_and_keeps_its_status(tmp_path):
    result = run_ci(tmp_path, readme_with("echo tests ran; exit 3"))
    assert result.returncode == 3
    assert result.stdout.splitlines() == ["CI: echo tests ran; exit 3", "tests ran"]  # not the demo block


def test_ci_fails_when_no_test_ran(tmp_path):
    result = run_ci(tmp_path, readme_with("exit 5"))
    assert result.returncode == 1
    assert "pytest ran no test" in result.stderr


def test_ci_fails_without_a_test_command(tmp_path):
    result = run_ci(tmp_path, "# x\n")
    assert result.returncode == 1
    assert "no test command" in result.stderr


def test_the_readme_test_command_installs_and_runs_pytest():
    with open(os.path.join(ROOT, "README.md")) as f:
        command = re.search(r"<!-- test command -->\n```\n(.*?)\n```", f.read(), re.S).group(1)
    assert "pip install -q torch==2.13.0" in command and command.endswith("python -m pytest -q")
