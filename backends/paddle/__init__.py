"""PaddlePaddle backend.

Paddle 3.3 runs CPU convolutions in dygraph as im2col + GEMM on the MKL it
bundles (2019.0 Update 5), not through oneDNN (FLAGS_use_onednn reaches only
static graphs, and training a static graph with it fails). On non-Intel CPUs
that MKL picks its generic code path: GEMM at 21 GFLOP/s on one core of this
AMD EPYC. MKL of that age still honours MKL_DEBUG_CPU_TYPE=5, which selects
its AVX2 kernels: 54 GFLOP/s, and about 1.5x per training step of the demo.
(6, its AVX-512 kernels, is faster again but moves the parity suite's loss
curves past its 1e-3 tolerance after ten SGD steps.) MKL reads the variable
at its first call, so setting it at import is early enough; a value the
user exported wins. torch's and MindSpore's libraries ignore it.
"""
import os
import platform
import warnings

# Importing paddle warns on every command (--help included) that ccache is missing, which only matters
# for compiling C++ extensions (none is compiled here); its BatchNorm warns at the first training step
# that it tracks running statistics, which is what the models expect.
warnings.filterwarnings("ignore", message="No ccache found", category=UserWarning)
warnings.filterwarnings("ignore", message="When training, we now always track global mean and variance",
                        category=UserWarning)


def mkl_cpu_type(cpuinfo="/proc/cpuinfo"):
    """'5' (MKL's AVX2 path) for a non-Intel x86 CPU with AVX2 and FMA; None for Intel (MKL picks well) or unknown."""
    try:
        with open(cpuinfo) as f:
            fields = dict(line.split(":", 1) for line in f if ":" in line)
    except OSError:
        return None
    fields = {key.strip(): value.split() for key, value in fields.items()}
    if fields.get("vendor_id") == ["GenuineIntel"]:
        return None
    return "5" if {"avx2", "fma"} <= set(fields.get("flags", [])) else None


if platform.machine().lower() in ("x86_64", "amd64") and (cpu_type := mkl_cpu_type()):
    os.environ.setdefault("MKL_DEBUG_CPU_TYPE", cpu_type)

# export.py writes these (DST extension -> the runtime that runs the file, convert/run_export.py).
EXPORT_TARGETS = {".json": "paddle"}
NATIVE_FORMAT = "pdparams"


# Read from the environment without the framework: core.cli prints its first line before importing it.
def launched():
    """(rank, world size, GPU index) of this process; (0, 1, 0) when not started by the launcher."""
    return tuple(int(os.environ.get(name, default).split(",")[0]) for name, default in
                 (("PADDLE_TRAINER_ID", "0"), ("PADDLE_TRAINERS_NUM", "1"), ("FLAGS_selected_gpus", "0")))
