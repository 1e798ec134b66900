"""Time to accuracy: training seconds until validation NDCG@10 (sampled protocol) first reaches given levels.

What a user waits for is a model as good as a given one, not an epoch. For
each objective and backbone this trains the configured recommender as
``esr train-seq`` does (the same training call, early stopping, validation under
the sampled protocol every epoch) and reports, from its per-epoch history,
the training seconds (validation excluded) until validation NDCG@10 first
reaches each target, and until the model's own best epoch. The default
targets are the reference LLM-ESR implementation's validation NDCG@10 on
amazon-scientific after 3 and 10 of its epochs (0.29 and 0.3235).

Each case runs in its own process with the given thread count; measure on an
otherwise idle machine.

    python benchmarks/time_to_accuracy.py [configs/amazon-scientific.yaml] \\
        [--objectives bce,gbce,ce,sampled_softmax] [--backbones sasrec,gru4rec,bert4rec] \\
        [--targets 0.29,0.3235] [--threads 2] [--json benchmarks/results/time_to_accuracy.json]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# Each objective with the settings it is measured with (negatives per position, or per batch).
OBJECTIVES = {
    "bce": ["train.loss=bce", "train.negatives=1"],
    "bce-64": ["train.loss=bce", "train.negatives=64"],
    "gbce": ["train.loss=gbce", "train.negatives=256"],
    "ce": ["train.loss=ce"],
    "sampled_softmax": ["train.loss=sampled_softmax", "train.negatives=512"],
}


def measure(config: str, objective: str, backbone: str, root: str, overrides: list[str], seed: int) -> dict:
    """Runs inside the child process: one training to its own early stop."""
    import torch

    from esrgraph.api import train_recommender
    from esrgraph.config import load_config

    settings = [f"run.root={root}", f"seq.backbone={backbone}", "train.valid_protocol=sampled"]
    cfg = load_config(config, settings + OBJECTIVES[objective] + overrides)
    trained = train_recommender(cfg, seed=seed)
    return {
        "objective": objective,
        "backbone": backbone,
        "variant": cfg.seq.variant,
        "seed": seed,
        "threads": torch.get_num_threads(),
        "settings": OBJECTIVES[objective] + overrides,
        "floor": trained.summary["popularity_valid_NDCG@10"],
        "history": trained.history,
    }


def summarise(case: dict, targets: list[float]) -> dict:
    """Training seconds (and epochs) until each target and until the best epoch."""
    elapsed, reached = 0.0, {}
    best = max(case["history"], key=lambda e: e["valid_NDCG@10"])
    for entry in case["history"]:
        elapsed += entry["train_seconds"]
        for target in targets:
            if entry["valid_NDCG@10"] >= target and str(target) not in reached:
                reached[str(target)] = {"epoch": entry["epoch"], "seconds": round(elapsed, 1)}
        if entry["epoch"] == best["epoch"]:
            reached["best"] = {"epoch": entry["epoch"], "seconds": round(elapsed, 1), "valid": best["valid_NDCG@10"]}
    per_epoch = sum(e["train_seconds"] for e in case["history"]) / len(case["history"])
    return {
        **{k: v for k, v in case.items() if k != "history"},
        "epochs": len(case["history"]),
        "seconds_per_epoch": round(per_epoch, 2),
        "reached": reached,
        "curve": [round(e["valid_NDCG@10"], 4) for e in case["history"]],
    }


def table(rows: list[dict], targets: list[float]) -> str:
    head = " | ".join(f"to {t}" for t in targets)
    lines = [
        f"| objective | backbone | s/epoch | {head} | to its best | best valid NDCG@10 | epochs run |",
        "|---|---|---:|" + "---:|" * len(targets) + "---:|---:|---:|",
    ]
    for r in rows:
        cells = []
        for t in targets:
            hit = r["reached"].get(str(t))
            cells.append(f"{hit['seconds']} s (epoch {hit['epoch']})" if hit else "not reached")
        best = r["reached"]["best"]
        lines.append(
            f"| {r['objective']} | {r['backbone']} | {r['seconds_per_epoch']} | "
            + " | ".join(cells)
            + f" | {best['seconds']} s (epoch {best['epoch']}) | {best['valid']:.4f} | {r['epochs']} |"
        )
    return "\n".join(lines)


def run_child(args: list[str], threads: int) -> dict:
    env = dict(os.environ, OMP_NUM_THREADS=str(threads), MKL_NUM_THREADS=str(threads))
    done = subprocess.run([sys.executable, __file__, "--child", *args], stdout=subprocess.PIPE, cwd=ROOT, env=env)
    if done.returncode != 0:
        raise SystemExit(f"measurement failed: {' '.join(args)}")
    return json.loads(done.stdout.decode().strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("config", nargs="?", default="configs/amazon-scientific.yaml")
    parser.add_argument("--objectives", default=",".join(OBJECTIVES))
    parser.add_argument("--backbones", default="sasrec,gru4rec,bert4rec")
    parser.add_argument("--targets", default="0.29,0.3235")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--root", default="runs", help="run root holding (or receiving) the embeddings")
    parser.add_argument("-o", "--override", action="append", default=[])
    parser.add_argument("--json")
    parser.add_argument("--child", nargs=2, metavar=("OBJECTIVE", "BACKBONE"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(measure(args.config, *args.child, args.root, args.override, args.seed)))
        return
    targets = [float(t) for t in args.targets.split(",")]
    rows = []
    for objective in args.objectives.split(","):
        for backbone in args.backbones.split(","):
            child = [objective, backbone, args.config, "--root", args.root, "--seed", str(args.seed)]
            child += sum((["-o", o] for o in args.override), [])
            row = summarise(run_child(child, args.threads), targets)
            rows.append(row)
            print(json.dumps({k: v for k, v in row.items() if k != "curve"}), flush=True)
    machine = f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores, {args.threads} threads per case"
    print(f"\nmachine: {machine}\n")
    print(table(rows, targets))
    if args.json:
        with open(args.json, "w") as handle:
            json.dump({"config": args.config, "targets": targets, "machine": machine, "rows": rows}, handle, indent=2)


if __name__ == "__main__":
    main()
