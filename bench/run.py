"""Run the benchmarks, each in its own process; results go to bench/results/<name>.json.

    python -m bench.run [NAME ...]      # all when no name is given; bash bench/setup.sh first

Names: the modules of bench/ (extract_frames, clip_loading, flow, training_step,
convert, evaluation, and any other benchmark module there, e.g. ms_mode).
"""
import argparse
import os
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
NOT_BENCHMARKS = {"__init__", "__main__", "common", "run"}
ORDER = ["extract_frames", "clip_loading", "flow", "training_step", "convert", "evaluation"]


def benchmark_names():
    found = {name[:-3] for name in os.listdir(HERE) if name.endswith(".py")} - NOT_BENCHMARKS
    return [n for n in ORDER if n in found] + sorted(found - set(ORDER))


def main(argv=None):
    names = benchmark_names()
    parser = argparse.ArgumentParser(prog="python -m bench.run", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("names", nargs="*", choices=names + [[]], metavar="NAME", help=", ".join(names))
    args = parser.parse_args(argv)
    failed = []
    for name in args.names or names:
        print(f"=== bench.{name}", flush=True)
        if subprocess.run([sys.executable, "-m", f"bench.{name}"]).returncode:
            failed.append(name)
    if failed:
        sys.exit(f"failed: {', '.join(failed)}")


if __name__ == "__main__":
    main()
