"""Training on a shared CPU: the quick profile's epochs on an idle machine and beside one busy process.

Three cases, each a fresh ``esr train-seq`` of the quick profile for a fixed
number of epochs (its embedding stages prepared once beforehand):

* ``idle``: nothing else runs, default threads;
* ``shared``: one single-thread numeric job runs beside it, default threads
  (the cores other jobs leave free, taken again every epoch);
* ``shared, all cores``: the same job beside it, ``--threads`` set to every
  core (what torch does on its own).

Reports the median training seconds per epoch and each case's ratio to
``idle``. Run it on an otherwise idle machine:

    python benchmarks/shared_cpu.py [configs/quick.yaml] [--epochs 4] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time

from esrgraph.training.threads import OPENMP_VARIABLES

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BUSY = "import numpy as np\na = np.random.rand(400, 400)\nwhile True:\n    a @ a"


def train(config: str, root: str, epochs: int, threads: int | None, name: str) -> list[float]:
    """Training seconds of each epoch of one fresh training."""
    args = [sys.executable, "-m", "cli.main", "-q"] + (["--threads", str(threads)] if threads else [])
    overrides = [f"run.root={root}", f"train.epochs={epochs}", f"train.patience={epochs + 1}", "train.seeds=[1]"]
    command = args + ["train-seq", config] + [f for o in overrides for f in ("-o", o)] + ["--force"]
    env = {k: v for k, v in os.environ.items() if k not in OPENMP_VARIABLES}
    subprocess.run(command, cwd=ROOT, env=env, check=True, capture_output=True)
    history = _history(root)
    print(f"{name}: {[round(s, 2) for s in history]}", flush=True)
    return history


def _history(root: str) -> list[float]:
    for dirpath, _, files in os.walk(root):
        if "history-seed1.json" in files and os.path.basename(dirpath) == "seq":
            with open(os.path.join(dirpath, "history-seed1.json")) as handle:
                return [e["train_seconds"] for e in json.load(handle)]
    raise RuntimeError("no training history written")


def with_busy_neighbour(run):
    neighbour = subprocess.Popen([sys.executable, "-c", BUSY], env={**os.environ, "OMP_NUM_THREADS": "1"})
    try:
        time.sleep(2)  # the neighbour is running before training starts
        return run()
    finally:
        neighbour.kill()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("config", nargs="?", default="configs/quick.yaml")
    parser.add_argument("--epochs", type=int, default=4)
    parser.add_argument("--json", default=None)
    args = parser.parse_args()
    cores = len(os.sched_getaffinity(0))
    with tempfile.TemporaryDirectory() as root:
        subprocess.run(
            [sys.executable, "-m", "cli.main", "-q", "embed", args.config, "-o", f"run.root={root}"],
            cwd=ROOT,
            check=True,
            capture_output=True,
        )
        cases = {
            "idle": train(args.config, root, args.epochs, None, "idle"),
            "shared": with_busy_neighbour(lambda: train(args.config, root, args.epochs, None, "shared")),
            "shared, all cores": with_busy_neighbour(
                lambda: train(args.config, root, args.epochs, cores, "shared, all cores")
            ),
        }
    idle = statistics.median(cases["idle"])
    rows = {
        name: {"seconds_per_epoch": statistics.median(s), "ratio_to_idle": statistics.median(s) / idle}
        for name, s in cases.items()
    }
    print("| case | seconds per epoch | × idle |\n|---|---:|---:|")
    for name, row in rows.items():
        print(f"| {name} | {row['seconds_per_epoch']:.2f} | {row['ratio_to_idle']:.2f} |")
    if args.json:
        with open(args.json, "w") as handle:
            json.dump({"cores": cores, "epochs": args.epochs, "cases": rows, "raw": cases}, handle, indent=2)


if __name__ == "__main__":
    main()
