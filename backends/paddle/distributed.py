"""Data-parallel processes started by paddle.distributed.launch (docs/distributed.md).

The launcher gives each process PADDLE_TRAINER_ID, PADDLE_TRAINERS_NUM and
FLAGS_selected_gpus; `init` joins them (NCCL on GPUs, Gloo on CPU).
"""
import paddle
import paddle.distributed as dist

from backends.paddle import launched  # framework-free: core.cli asks it before the import


def init():
    """Join the other processes; returns (rank, world size)."""
    rank, world_size, _ = launched()
    if world_size > 1 and not dist.is_initialized():
        dist.init_parallel_env()
    return rank, world_size


def all_reduce_sum(values):
    """Element-wise sums of `values` over the processes."""
    tensor = paddle.to_tensor(values, dtype="float64")
    dist.all_reduce(tensor)
    return tensor.tolist()


def broadcast_batchnorm_statistics(model):
    """Give this process rank 0's BatchNorm running statistics (`_mean`, `_variance`), in place."""
    for name, param in model.named_parameters():
        if name.endswith(("._mean", "._variance")):
            dist.broadcast(param, 0)


def finish():
    """Nothing to leave explicitly: the group ends with the processes the launcher started."""
