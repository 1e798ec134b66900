"""Training speed of the sequential recommenders: sequences/s, seconds per epoch, peak memory.

The config's settings (the package defaults where it sets none: hidden 256,
the size rule's objective) unless overridden with ``-o``. Each (dataset,
model) is measured in its own process so peak memory (RSS, or CUDA peak) is
its own.
The text embeddings come from the run directory (``esr embed`` with the same
config and ``--root``; computed first if missing).

    python benchmarks/train_seq_speed.py configs/amazon-scientific.yaml configs/amazon-beauty.yaml \
        [--models sasrec,gru4rec,bert4rec] [--variants plain,llmesr] [--epochs 1] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def measure(config: str, backbone: str, variant: str, epochs: int, root: str, overrides: list[str]) -> dict:
    """Runs inside the child process: ``epochs`` epochs of the training ``esr train-seq`` runs."""
    import numpy as np
    import torch

    from esrgraph.api import recommender_inputs, train_recommender
    from esrgraph.config import load_config
    from esrgraph.runs import Run

    settings = [f"run.root={root}", f"seq.backbone={backbone}", f"seq.variant={variant}"]
    budget = [f"train.epochs={epochs}", f"train.patience={epochs + 1}", "train.min_epochs=0"]
    cfg = load_config(config, settings + overrides + budget)
    run = Run(cfg)
    inputs = recommender_inputs(run)
    device = torch.device(str(cfg.train.device if cfg.train.device != "auto" else "cpu"))
    if torch.cuda.is_available() and cfg.train.device in ("auto", "cuda"):
        device = torch.device("cuda")
        torch.cuda.reset_peak_memory_stats()
    history = train_recommender(cfg, run, seed=0, inputs=inputs).history
    times = [e["train_seconds"] for e in history]
    valid_s = float(np.median([e["seconds"] - e["train_seconds"] for e in history]))
    sequences = len(inputs.sequences(cfg).trainable_users())
    per_epoch = float(np.median(times))
    return {
        "dataset": cfg.dataset.name,
        "model": f"{backbone}/{variant}",
        "device": str(device),
        "threads": torch.get_num_threads(),
        "users_trained": sequences,
        "seconds_per_epoch": round(per_epoch, 2),
        "sequences_per_s": round(sequences / per_epoch, 1),
        "validation_s": round(valid_s, 2),
        "cuda_peak_mib": round(torch.cuda.max_memory_allocated() / 2**20, 1) if device.type == "cuda" else None,
    }


def run_child(args: list[str]) -> tuple[dict, float]:
    """Run one measurement in a child; returns its result and its peak RSS in MiB."""
    proc = subprocess.Popen([sys.executable, __file__, "--child", *args], stdout=subprocess.PIPE, cwd=ROOT)
    out = proc.stdout.read()
    _, status, usage = os.wait4(proc.pid, 0)
    if status != 0:
        raise SystemExit(f"measurement failed: {' '.join(args)}")
    return json.loads(out.decode().strip().splitlines()[-1]), usage.ru_maxrss / 1024


def table(rows: list[dict]) -> str:
    lines = [
        "| dataset | model | device | s/epoch | sequences/s | validation s | peak RSS MiB | CUDA peak MiB |",
        "|---|---|---|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        lines.append(
            f"| {r['dataset']} | {r['model']} | {r['device']} | {r['seconds_per_epoch']} | {r['sequences_per_s']} "
            f"| {r['validation_s']} | {r['peak_rss_mib']:.0f} | {r['cuda_peak_mib'] or '–'} |"
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("configs", nargs="*", default=["configs/amazon-scientific.yaml"])
    parser.add_argument("--models", default="sasrec,gru4rec,bert4rec")
    parser.add_argument("--variants", default="plain,llmesr")
    parser.add_argument("--epochs", type=int, default=1)
    parser.add_argument("--root", default="runs", help="run root holding (or receiving) the embeddings")
    parser.add_argument("-o", "--override", action="append", default=[])
    parser.add_argument("--json")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args, rest = parser.parse_known_args()
    if args.child:
        config, backbone, variant = args.configs
        print(json.dumps(measure(config, backbone, variant, args.epochs, args.root, args.override)))
        return
    rows = []
    for config in args.configs:
        for variant in args.variants.split(","):
            for backbone in args.models.split(","):
                child = [config, backbone, variant, "--epochs", str(args.epochs), "--root", args.root]
                child += sum((["-o", o] for o in args.override), [])
                result, rss = run_child(child)
                result["peak_rss_mib"] = rss
                rows.append(result)
                print(json.dumps(result), flush=True)
    print(f"\nmachine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores\n")
    print(table(rows))
    if args.json:
        with open(args.json, "w") as handle:
            json.dump(rows, handle, indent=2)


if __name__ == "__main__":
    main()
