"""Data-parallel processes started by torchrun (docs/distributed.md).

torchrun gives each process RANK, WORLD_SIZE and LOCAL_RANK; `init` joins
them in one process group.
"""
import torch
import torch.distributed as dist

from backends.torch import launched  # framework-free: core.cli asks it before the import


def init():
    """Join the other processes; returns (rank, world size)."""
    rank, world_size, _ = launched()
    if world_size > 1 and not dist.is_initialized():
        dist.init_process_group(backend=process_group_backend())
    return rank, world_size


def process_group_backend():
    """Gloo for CPU tensors, plus NCCL for CUDA tensors where there are GPUs. Named explicitly: with no
    backend, torch creates only the accelerator's (NCCL) on a GPU machine, and then the CPU tensors of
    all_reduce_sum, or a whole `device: cpu` run, fail ('No backend type associated with device type cpu')."""
    return "cpu:gloo,cuda:nccl" if torch.cuda.is_available() else "gloo"


def all_reduce_sum(values):
    """Element-wise sums of `values` over the processes."""
    tensor = torch.tensor(values, dtype=torch.float64)
    dist.all_reduce(tensor)
    return tensor.tolist()


def broadcast_batchnorm_statistics(model):
    """Give this process rank 0's BatchNorm running statistics (the model's buffers), in place."""
    for buffer in model.buffers():
        dist.broadcast(buffer, 0)


def finish():
    """Wait for every process, then leave the group: a Gloo group torn down at interpreter exit while
    another process still talks to it aborts ('terminate called without an active exception')."""
    if dist.is_initialized():
        dist.barrier()
        dist.destroy_process_group()
