"""Data-parallel processes started by msrun (docs/distributed.md).

msrun gives each process RANK_ID, RANK_SIZE and DEVICE_ID; `init` joins them
(HCCL on Ascend, NCCL on GPUs, MindSpore's own collectives on CPU) and sets
the data-parallel mode with averaged gradients.
"""
import mindspore as ms
import numpy as np
from mindspore import communication, ops

from backends.mindspore import launched  # framework-free: core.cli asks it before the import


def init():
    """Join the other processes; returns (rank, world size)."""
    rank, world_size, _ = launched()
    if world_size > 1:
        communication.init()
        ms.set_auto_parallel_context(parallel_mode=ms.ParallelMode.DATA_PARALLEL, gradients_mean=True)
        rank, world_size = communication.get_rank(), communication.get_group_size()
    return rank, world_size


def all_reduce_sum(values):
    """Element-wise sums of `values` over the processes."""
    # AllReduce takes no float64: each value travels as a float32 plus its float32 rounding error.
    values = np.asarray(values, np.float64)
    high = values.astype(np.float32)
    parts = np.stack([high, (values - high).astype(np.float32)])
    summed = ops.AllReduce()(ms.Tensor(parts)).asnumpy().astype(np.float64)
    return (summed[0] + summed[1]).tolist()


def broadcast_batchnorm_statistics(model):
    """Give this process rank 0's BatchNorm running statistics (`moving_mean`, `moving_variance`), in place."""
    # ops.Broadcast is documented for Ascend and GPU and runs on CPU too; ops.communication.broadcast lists no GPU.
    broadcast = ops.Broadcast(0)
    for param in model.get_parameters():
        if param.name.endswith(("moving_mean", "moving_variance")):
            ops.assign(param, broadcast((param,))[0])


def finish():
    """Nothing to leave explicitly: the group ends with the processes the launcher started."""
