"""A result_path is written by one training at a time, and a checkpoint that cannot be written (full disk) ends the
run with one line, leaving the file it would have replaced intact."""
import errno
import os
import resource
import signal
import subprocess
import sys
import types

import pytest

from core.cli import train_main
from core.result_path import CheckpointWriteError, claim_result_path
from core.training import atomic_write
from tests._training_data import tiny_config, write_colour_dataset
from tests.conftest import ROOT

HOLD = "import sys, time; from core.result_path import claim_result_path; claim_result_path(sys.argv[1]); " \
       "print('held', flush=True); time.sleep(60)"


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    root = tmp_path_factory.mktemp("colours")
    write_colour_dataset(str(root), train_per_class=1, val_per_class=1, n_frames=4)
    return str(root)


def test_a_second_training_into_a_live_result_path_stops_naming_the_process(data, tmp_path, monkeypatch):
    result_path = tmp_path / "out"
    holder = subprocess.Popen([sys.executable, "-c", HOLD, str(result_path)], cwd=ROOT, stdout=subprocess.PIPE,
                              text=True)
    try:
        assert holder.stdout.readline() == "held\n"
        built = []

        def build_engine(config):
            built.append(config)
            return types.SimpleNamespace(rank=0, world_size=1)

        monkeypatch.setitem(sys.modules, "fake_engine", types.SimpleNamespace(Engine=build_engine))
        with pytest.raises(SystemExit) as exit_info:
            train_main("torch", "fake_engine", ["--config", tiny_config(data, result_path)])
        message = str(exit_info.value.code)
        assert message.startswith(f"cannot train: {result_path} is being written by another training, process "
                                  f"{holder.pid} (") and "claim_result_path" in message and "\n" not in message
        assert sorted(os.listdir(result_path)) == [".lock"]  # nothing else written
    finally:
        holder.kill()
        holder.wait()
    # The holder is dead: its lock is stale and taken over.
    claim_result_path(str(result_path))
    assert (result_path / ".lock").read_text() == f"{os.getpid()}\n"


def test_a_failed_checkpoint_write_leaves_the_previous_file_intact(tmp_path):
    path = tmp_path / "save_2.pth"
    path.write_bytes(b"the previous checkpoint")

    def fill_the_disk(tmp):
        with open(tmp, "wb") as f:
            f.write(b"half")
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    with pytest.raises(CheckpointWriteError) as error:
        atomic_write(str(path), fill_the_disk)
    assert str(error.value) == (f"cannot write {path} (No space left on device); it is left as it was, and earlier "
                                "checkpoints are untouched")
    assert path.read_bytes() == b"the previous checkpoint" and os.listdir(tmp_path) == ["save_2.pth"]


def test_torch_training_on_a_full_disk_ends_with_one_line(data, tmp_path):
    config = tiny_config(data, tmp_path / "out", n_epochs=1, checkpoint=1)

    def small_files_only():  # the logs fit, a checkpoint does not: the disk is full when the checkpoint is written
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (20000, 20000))

    run = subprocess.run([sys.executable, "-m", "backends.torch.train", "--config", config], cwd=ROOT,
                         capture_output=True, text=True, timeout=300, preexec_fn=small_files_only)
    assert run.returncode == 1
    last_line = run.stderr.strip().splitlines()[-1]
    # The first checkpoint written (save_best.pth, then save_1.pth) does not fit.
    assert last_line.startswith(f"cannot train: cannot write {tmp_path / 'out' / 'save_best.pth'} (")
    assert "Traceback" not in run.stderr
    assert {"opts.yaml", "train.log", "val.log"} <= set(os.listdir(tmp_path / "out"))
    assert not [name for name in os.listdir(tmp_path / "out") if name.startswith(("save_", ".tmp"))]


def test_a_finished_training_releases_its_result_path(tmp_path):
    from core.result_path import release_result_path
    claim_result_path(str(tmp_path / "out"))
    release_result_path(str(tmp_path / "out"))
    assert os.listdir(tmp_path / "out") == []
    run = subprocess.run([sys.executable, "-c", HOLD.replace("time.sleep(60)", "pass"), str(tmp_path / "out")],
                         cwd=ROOT, capture_output=True, text=True)
    assert run.returncode == 0 and run.stdout == "held\n"
