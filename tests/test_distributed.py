"""Data-parallel training on each framework's own launcher: 2 CPU processes on this machine.

torchrun (Gloo), python -m paddle.distributed.launch (Gloo) and msrun (MindSpore's CPU collectives) all
run collectives on CPU here; docs/distributed.md records what was run. The data is
tests/_training_data.py's colour task: 12 training clips, so batch 4 x 2 processes make the global
batches 8 and 4, exactly those of one process with batch 8, and 9 validation clips, so the last
global validation batch has a clip for one of the two processes only.
"""
import os
import socket
import subprocess
import sys

import numpy as np
import pytest

from core.config import load_config
from core.datasets import validation_set
from core.loader import BatchLoader, rank_share
from core.checkpoints import read_state
from core.training import read_log
from tests._distributed_step import engine_class, summed_loss, train_and_validate
from tests._training_data import tiny_config, write_colour_dataset
from tests.conftest import ROOT

FRAMEWORKS = ("torch", "paddle", "mindspore")
SUFFIX = {"torch": ".pth", "paddle": ".pdparams", "mindspore": ".ckpt"}
SIDECARS = {"torch": (), "paddle": (".pdopt", ".json"), "mindspore": ()}
STEP_SCRIPT = os.path.join("tests", "_distributed_step.py")


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return str(s.getsockname()[1])


def launch(framework, log_dir, *script):
    """Run `script` (a .py path or, for torch, -m module) in 2 processes with the framework's launcher."""
    launcher = {
        "torch": [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2"],
        "paddle": [sys.executable, "-m", "paddle.distributed.launch", "--nproc_per_node", "2",
                   "--log_dir", str(log_dir)],
        "mindspore": [os.path.join(os.path.dirname(sys.executable), "msrun"), "--worker_num", "2",
                      "--local_worker_num", "2", "--master_port", free_port(), "--join", "True",
                      "--log_dir", str(log_dir)],
    }[framework]
    done = subprocess.run(launcher + list(script), cwd=ROOT, capture_output=True, text=True, timeout=240)
    worker_logs = "".join(open(os.path.join(log_dir, f)).read() for f in sorted(os.listdir(log_dir))) \
        if os.path.isdir(log_dir) else ""
    assert done.returncode == 0, f"{framework} launch failed:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}\n" \
                                 f"{worker_logs[-3000:]}"
    return done.stdout + done.stderr


def rank_output(framework, log_dir, launcher_output, rank):
    """What process `rank` printed: Paddle and msrun keep a log per process; torchrun passes every process's output through."""
    name = {"paddle": f"workerlog.{rank}", "mindspore": f"worker_{rank}.log"}.get(framework)
    return open(os.path.join(log_dir, name)).read() if name else launcher_output


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    root = tmp_path_factory.mktemp("colours")
    write_colour_dataset(str(root), val_per_class=3)
    return root


def test_rank_shares_split_each_global_batch():
    dataset = list(range(11))
    loaders = [BatchLoader(dataset, 2, shuffle=True, seed=3, rank=r, world_size=3) for r in range(3)]
    one = BatchLoader(dataset, 6, shuffle=True, seed=3)
    for loader in loaders + [one]:
        loader.set_epoch(2)
    shares = [loader.batch_indices() for loader in loaders]
    # Global batches of 6 and 5: the 5 split 2 + 2 + 1, in the order of the single-process batch.
    assert [len(s) for s in shares[0]] == [2, 2] and [len(s) for s in shares[2]] == [2, 1]
    assert [sum((s[i] for s in shares), []) for i in range(2)] == one.batch_indices()
    assert rank_share([7, 8], 2, 3) == [] and len(BatchLoader(list(range(7)), 2, world_size=3)) == 1


@pytest.mark.parametrize("n_clips, batch_size, world_size, shares", [
    (9, 4, 2, [[[0, 1, 2, 3], [8]], [[4, 5, 6, 7]]]),
    (3, 16, 4, [[[0]], [[1]], [[2]], []]),
])
def test_validation_keeps_every_clip_once_over_the_processes(n_clips, batch_size, world_size, shares):
    validation = [BatchLoader(list(range(n_clips)), batch_size, rank=r, world_size=world_size, equal_steps=False)
                  for r in range(world_size)]
    assert [loader.batch_indices() for loader in validation] == shares
    assert [len(loader) for loader in validation] == [len(s) for s in shares]
    # Training steps stay equal: the final global batch with fewer clips than processes is left out.
    training = [BatchLoader(list(range(n_clips)), batch_size, rank=r, world_size=world_size)
                for r in range(world_size)]
    assert [len(loader) for loader in training] == world_size * [n_clips // (batch_size * world_size)]


def test_torch_process_group_runs_cpu_tensors_on_gloo_also_with_gpus(monkeypatch):
    import torch
    import torch.distributed as dist
    from backends.torch.distributed import process_group_backend

    def devices(available):
        monkeypatch.setattr(torch.cuda, "is_available", lambda: available)
        return dist.BackendConfig(dist.Backend(process_group_backend())).get_device_backend_map()

    # Plain "nccl" maps only cuda: a CPU all_reduce fails ('No backend type associated with device type cpu').
    assert devices(True) == {"cpu": "gloo", "cuda": "nccl"}
    assert devices(False)["cpu"] == "gloo"


@pytest.mark.parametrize("framework", FRAMEWORKS)
def test_two_processes_with_batch_4_take_the_steps_of_one_with_batch_8(framework, data, tmp_path):
    one = train_and_validate(framework, tiny_config(str(data), tmp_path / "one", batch_size=8))
    out = tmp_path / "two.npz"
    launch(framework, tmp_path / "logs", STEP_SCRIPT, "step", framework,
           tiny_config(str(data), tmp_path / "two", batch_size=4), str(out))
    two = dict(np.load(out))
    assert (int(one["steps"]), int(two["steps"])) == (2, 2)
    assert one["n_samples"] == two["n_samples"] == 12  # loss summed over both processes
    assert float(two["loss_sum"]) == pytest.approx(one["loss_sum"], abs=1e-5)
    assert one["moved"] > 1e-3  # the weights did change
    # Validation: the second process has no clip of the last global batch (8 + 1) and one step less.
    assert one["val_samples"] == two["val_samples"] == 9
    assert float(two["val_loss_sum"]) == pytest.approx(one["val_loss_sum"], abs=1e-5)
    for name in one:
        np.testing.assert_allclose(two[name], one[name], atol=1e-5, rtol=0, err_msg=name)


TRAINING = dict(n_epochs=2, checkpoint=1, learning_rate=0.005)


@pytest.fixture(scope="module", params=FRAMEWORKS)
def two_process_training(request, data, tmp_path_factory):
    """(framework, result dir, launcher log dir, launcher output) of one 2-epoch training CLI run in 2
    processes, shared by the tests that read it."""
    framework = request.param
    root = tmp_path_factory.mktemp(f"trained_{framework}")
    full = root / "full"
    output = launch(framework, root / "logs", STEP_SCRIPT, "train", framework, str(full),
                    "--config", tiny_config(str(data), full, **TRAINING))
    return framework, full, root / "logs", output


def test_two_process_validation_scores_the_checkpoint_rank_0_saves(two_process_training, data, tmp_path):
    framework, full, _, _ = two_process_training
    config = load_config(tiny_config(str(data), tmp_path / "check", **TRAINING), (), ())
    engine = engine_class(framework)(config)  # one process
    engine.load(str(full / f"save_2{SUFFIX[framework]}"))
    engine.begin_epoch(2, False)
    loss_sum, n_samples = summed_loss(engine, engine.eval_batch, BatchLoader(validation_set(config), 4))
    assert n_samples == 9
    # With each process's own BatchNorm statistics val.log read 1.011910 / 1.049810 / 1.124267 here
    # (torch / paddle / mindspore), 3e-3 to 1e-2 away from the checkpoint's 1.008741 / 1.059345 / 1.120246.
    assert float(read_log(full / "val.log")[-1]["loss"]) == pytest.approx(loss_sum / n_samples, abs=1e-6)


def test_two_process_training_writes_once_and_resumes(two_process_training, data, tmp_path):
    framework, full, log_dir, output = two_process_training
    rows = read_log(full / "train.log")
    assert [int(r["epoch"]) for r in rows] == [1, 2]
    assert [int(r["epoch"]) for r in read_log(full / "val.log")] == [1, 2]
    expected = {f"save_{e}{ext}" for e in (1, 2, "best") for ext in (SUFFIX[framework],) + SIDECARS[framework]}
    files = set(os.listdir(full))
    assert {f for f in files if f.startswith("save_")} == expected and not [f for f in files if f.startswith(".tmp")]
    assert "x 2 processes" in output
    assert rank_output(framework, log_dir, output, 0).count("epoch 1/2") == 1
    if framework != "torch":
        assert "epoch 1/2" not in rank_output(framework, log_dir, output, 1)
    # The final names alone cannot show a second writer: each process's writes were noted.
    written = {rank: full.with_name(f"full.writes.{rank}").read_text().splitlines() for rank in (0, 1)}
    assert written[1] == []
    assert {f"replace {name}" for name in expected} | {f"open {name}" for name in
            ("opts.yaml", "train.log", "val.log", "curves.png")} <= set(written[0])

    # Every process resumes from the checkpoint the first one wrote (on the real entry point), and continues exactly.
    module = f"backends.{framework}.train"
    script = ["-m", module] if framework == "torch" else [os.path.join(*module.split(".")) + ".py"]
    resumed = tmp_path / "resumed"
    launch(framework, tmp_path / "logs_resumed", *script, "--config", tiny_config(str(data), resumed, **TRAINING),
           "--set", f"resume_path={full / ('save_1' + SUFFIX[framework])}")
    resumed_rows = read_log(resumed / "train.log")
    assert [{k: v for k, v in row.items() if k != "time"} for row in (rows[1], resumed_rows[0])] == 2 * [
        {"epoch": "2", "loss": rows[1]["loss"], "acc": rows[1]["acc"], "lr": rows[1]["lr"]}]
    final, final_resumed = (read_state(str(r / f"save_2{SUFFIX[framework]}")) for r in (full, resumed))
    for name in final:
        np.testing.assert_allclose(final_resumed[name], final[name], atol=1e-6, rtol=0, err_msg=name)


WORLD_SIZE_VARIABLE = {"torch": "WORLD_SIZE", "paddle": "PADDLE_TRAINERS_NUM", "mindspore": "RANK_SIZE"}
SYNC_BN_REFUSAL = {"torch": "SyncBatchNorm layers only work with GPU modules",
                   "paddle": "The kernel `sync_batch_norm` is not registered",
                   "mindspore": "nn.SyncBatchNorm supports Ascend only"}


@pytest.mark.parametrize("framework", FRAMEWORKS)
def test_batchnorm_sync_on_cpu_is_refused_before_joining(framework, data, tmp_path, monkeypatch):
    monkeypatch.setenv(WORLD_SIZE_VARIABLE[framework], "2")  # as the launcher sets it; no other process exists
    config = load_config(tiny_config(str(data), tmp_path / "sync", batchnorm_sync=True), (), ())
    with pytest.raises(SystemExit, match="batchnorm_sync") as refusal:
        engine_class(framework)(config)
    assert SYNC_BN_REFUSAL[framework] in str(refusal.value)
