"""Parameters and FLOPs per clip of every registered architecture, and the README's architecture table.

    python -m bench.model_size [--frames 16] [--size 112]

Parameters: core.archs.expected_shapes at full width, 400 classes, RGB (weights and biases; BatchNorm running
statistics left out), framework-free. FLOPs: torch.utils.flop_counter.FlopCounterMode on one clip (default
16 x 112 x 112, kenshohara's training clip) through the PyTorch model built on the meta device (no memory, no
arithmetic): 2 per multiply-add of every convolution and of the classifier; BatchNorm, ReLU, pooling and
additions are not counted; TSN's on his 3 x 224 x 224 clip (TSN_CLIP). Writes bench/results/model_size.json and
prints the table rows.
"""
import argparse

from backends import BACKENDS
from bench.common import write_result
from core import archs
from core.checkpoints.layouts import LAYOUTS


# TSN's clip: his num_segments (3) frames of 224 x 224 (his BN-Inception cannot run at 112 x 112: its stride-2
# blocks need even maps there).
TSN_CLIP = (3, 224)


def parameter_count(arch):
    return sum(_product(shape) for name, shape in archs.expected_shapes(arch).items()
               if not name.endswith(("running_mean", "running_var")))


def _product(shape):
    out = 1
    for size in shape:
        out *= size
    return out


def flops(arch, frames, size):
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    from backends.torch.models import build_model

    with torch.device("meta"):
        model = build_model(arch).eval()
        clip = torch.empty(1, 3, frames, size, size)
    with FlopCounterMode(display=False) as counter, torch.no_grad():
        model(clip)
    return counter.get_total_flops()


def community_files(arch):
    """The community layouts that hold `arch` (convert and pretrain_path read them as is)."""
    spec = archs.get(arch)
    names = [f"kenshohara `{spec.kenshohara}`"] if spec.kenshohara else []
    return names + [f"`{name}`" for name, layout in LAYOUTS.items()
                    if arch in layout.archs and name not in ("neutral", "kenshohara")]


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m bench.model_size", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--frames", type=int, default=16, help="clip length (default 16)")
    parser.add_argument("--size", type=int, default=112, help="clip height and width (default 112)")
    args = parser.parse_args(argv)
    clips = {arch: TSN_CLIP if archs.get(arch).segments else (args.frames, args.size) for arch in archs.ARCHS}
    rows = {arch: {"parameters": parameter_count(arch), "flops": flops(arch, *clips[arch])} for arch in archs.ARCHS}
    for arch in archs.ARCHS:
        if clips[arch] == TSN_CLIP:
            rows[arch]["clip"] = [3, *TSN_CLIP, TSN_CLIP[1]]
    write_result("model_size", {"clip": [3, args.frames, args.size, args.size], "archs": rows})
    print(f"| arch | config `model` / `model_depth` | parameters | GFLOPs per {args.frames} x {args.size} x "
          f"{args.size} clip | backends | community files read as is |")
    print("|---|---|---|---|---|---|")
    for arch, row in rows.items():
        spec = archs.get(arch)
        depth = "" if spec.depth is None else f" / {spec.depth}"
        clip = f" ({TSN_CLIP[0]} x {TSN_CLIP[1]} x {TSN_CLIP[1]})" if "clip" in row else ""
        print(f"| `{arch}` | `{spec.model}`{depth} | {row['parameters'] / 1e6:.1f} M | {row['flops'] / 1e9:.1f}{clip} "
              f"| "
              f"{', '.join(BACKENDS)} | {', '.join(community_files(arch)) or '-'} |")


if __name__ == "__main__":
    main()
