"""Helpers shared by the benchmarks: repeated timing, medians, result files, test data."""
import json
import os
import statistics
import subprocess
import sys
import time

RESULTS_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "results")
CRICKET_GIF = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), os.pardir,
                           "shared", "data", "v_CricketShot_g04_c01_rgb.gif")


def timed(fn):
    """(seconds, result) of one call."""
    start = time.perf_counter()
    result = fn()
    return time.perf_counter() - start, result


def median_rate(seconds, amount):
    """Median of amount / seconds over repeats, with every repeat's rate for the record."""
    rates = [amount / s for s in seconds]
    return {"median": statistics.median(rates), "runs": [round(r, 3) for r in rates]}


def write_result(name, result):
    """Print `result` and write it to bench/results/<name>.json."""
    os.makedirs(RESULTS_DIR, exist_ok=True)
    path = os.path.join(RESULTS_DIR, f"{name}.json")
    result = {"benchmark": name, "time": time.strftime("%Y-%m-%d %H:%M:%S"), "cpus": os.cpu_count(),
              "load_average": os.getloadavg(), **result}
    with open(path, "w") as f:
        json.dump(result, f, indent=1)
    print(json.dumps(result, indent=1))
    print(f"written {path}")
    return result


def run_module(module, *args):
    """Run `python -m module args` (its own process: frameworks stay apart); return its parsed JSON line."""
    done = subprocess.run([sys.executable, "-m", module, *map(str, args)], stdout=subprocess.PIPE, text=True)
    if done.returncode:
        raise RuntimeError(f"python -m {module} {' '.join(map(str, args))} failed (exit {done.returncode})")
    return json.loads(done.stdout.strip().splitlines()[-1])


def synthetic_dataset(root, size=128, frames=48, videos_per_class=8, classes=5):
    """core.synthetic videos under root/videos (made once, kept between runs)."""
    if not os.path.isdir(os.path.join(root, "videos")):
        subprocess.run([sys.executable, "-m", "core.synthetic", root, "--size", str(size), "--frames", str(frames),
                        "--videos-per-class", str(videos_per_class), "--classes", str(classes)],
                       check=True, stdout=subprocess.DEVNULL)
    return os.path.join(root, "videos")
