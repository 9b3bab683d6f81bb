"""MindSpore backend.

On x86 CPUs with AVX-512, MindSpore 2.10's oneDNN runs Conv3d/Conv2d in its
plain NCDHW layout through a reference kernel (ONEDNN_VERBOSE shows
"jit_uni_ncsp:conv+ref"): about 1 s for a 16-channel 3x3x3 convolution that
torch does in 5 ms. Capping oneDNN at AVX2 selects its GEMM convolution,
40-60x faster here (bench/ms_isa.py). oneDNN reads the variable when it
creates its first primitive, so setting it at import is early enough; a
value the user exported wins. The variable also caps torch's oneDNN in the
same process, which is one more reason MindSpore gets a process of its own.
"""
import os
import platform

if platform.machine().lower() in ("x86_64", "amd64"):
    os.environ.setdefault("ONEDNN_MAX_CPU_ISA", "AVX2")

# export.py writes these (DST extension -> the runtime that runs the file, convert/run_export.py).
EXPORT_TARGETS = {".mindir": "mindspore"}
NATIVE_FORMAT = "ckpt"


# Read from the environment without the framework: core.cli prints its first line before importing it.
def launched():
    """(rank, world size, device index) of this process; (0, 1, 0) when not started by msrun."""
    return tuple(int(os.environ.get(name, default)) for name, default in
                 (("RANK_ID", "0"), ("RANK_SIZE", "1"), ("DEVICE_ID", "0")))
