"""Checkpoint conversion: seconds and peak memory of `python -m convert` on a ResNet-50, each direction.

    python -m bench.convert [--repeats 3]

A kenshohara-style r3d50 .pth (400 classes, seeded random weights) is written
once; from it a .pdparams and a .ckpt are made, then every conversion between
the three formats runs as its own `python -m convert` process. Its peak RSS is
read with wait4() from a small launcher process (a child inherits the peak RSS
of its parent at exec, so the launcher is kept tiny). Reported: median seconds,
peak RSS, and peak RSS / source file size (goal: < 3). `import_floor_mb` is the
peak RSS of importing what the conversion imports (numpy, and torch when .pth is
involved: .ckpt and .pdparams are read and written without their frameworks) and nothing else;
`above_floor_over_file_size` is (peak - floor) / file size.
"""
import argparse
import json
import os
import statistics
import subprocess
import sys

from bench.common import write_result

DATA = os.path.join(os.path.dirname(os.path.abspath(__file__)), "data", "convert")
FORMATS = {"pth": ".pth", "pdparams": ".pdparams", "ckpt": ".ckpt"}
# The frameworks `python -m convert` imports per format (.pdparams and .ckpt need none: convert/ckpt.py).
MODULES = {"pth": ["torch"], "pdparams": [], "ckpt": []}
# Runs `python ARGS...` and prints {"seconds", "maxrss_kb"} of that child.
LAUNCHER = """
import json, os, sys, time
start = time.perf_counter()
pid = os.posix_spawn(sys.executable, [sys.executable] + sys.argv[1:], os.environ)
_, status, usage = os.wait4(pid, 0)
print(json.dumps({"seconds": time.perf_counter() - start, "maxrss_kb": usage.ru_maxrss,
                  "status": os.waitstatus_to_exitcode(status)}))
"""


def measure(*args):
    done = subprocess.run([sys.executable, "-c", LAUNCHER, *args], stdout=subprocess.PIPE, text=True, check=True)
    result = json.loads(done.stdout.strip().splitlines()[-1])
    if result["status"]:
        raise RuntimeError(f"python {' '.join(args)} failed (exit {result['status']})")
    return result


def make_checkpoints():
    os.makedirs(DATA, exist_ok=True)
    paths = {fmt: os.path.join(DATA, "r3d50" + ext) for fmt, ext in FORMATS.items()}
    if not os.path.exists(paths["pth"]):
        subprocess.run([sys.executable, "-c", "from tests.community import write_kenshohara_pth; "
                        f"write_kenshohara_pth({paths['pth']!r}, 'resnet50', 400)"], check=True)
    for fmt in ("pdparams", "ckpt"):
        if not os.path.exists(paths[fmt]):
            subprocess.run([sys.executable, "-m", "convert", paths["pth"], paths[fmt]], check=True,
                           stderr=subprocess.DEVNULL)
    return paths


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m bench.convert", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=3, help="runs of each conversion; medians are reported")
    args = parser.parse_args(argv)
    paths = make_checkpoints()
    results = {}
    for src in FORMATS:
        for dst in FORMATS:
            if src == dst:
                continue
            out = os.path.join(DATA, f"out_{src}_to_{dst}{FORMATS[dst]}")
            runs = [measure("-m", "convert", paths[src], out) for _ in range(args.repeats)]
            imports = sorted(set(MODULES[src] + MODULES[dst]))
            floor = measure("-c", "; ".join(f"import {m}" for m in ["numpy"] + imports))
            size = os.path.getsize(paths[src])
            peak = statistics.median(r["maxrss_kb"] for r in runs) * 1024
            results[f"{src}->{dst}"] = {
                "source_mb": round(size / 2**20, 1), "seconds": round(statistics.median(r["seconds"] for r in runs), 2),
                "peak_rss_mb": round(peak / 2**20, 1), "peak_rss_over_file_size": round(peak / size, 2),
                "import_floor_mb": round(floor["maxrss_kb"] / 1024, 1),
                "above_floor_over_file_size": round((peak - floor["maxrss_kb"] * 1024) / size, 2)}
            os.remove(out)
            print(f"{src}->{dst}: {results[f'{src}->{dst}']}", file=sys.stderr)
    write_result("convert", {"model": "resnet50 (kenshohara r3d50, 400 classes)", "repeats": args.repeats,
                             "goal": "peak RSS < 3x the source file size", "conversions": results})


if __name__ == "__main__":
    main()
