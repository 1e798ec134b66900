"""Validation of a trained recommender with its user vectors in fp32 and in bf16: seconds and NDCG@10.

Training in bf16 (``train.precision``) leaves validation, run after every
epoch on raw and averaged weights, as the larger half of an epoch at a middle
size; its cost is mostly the user encoder. This validates one trained seed of
a finished run both ways, alternating, and reports the time of each pass and
the full-ranking NDCG@10 of every user and item group.

    python benchmarks/valid_precision.py RUN_DIR [--seed 1] [--users 50000] [--rounds 2] \\
        [--json benchmarks/results/valid_precision.json]
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from pathlib import Path

import torch

from esrgraph.config import load_config
from esrgraph.data.sequences import SequenceData
from esrgraph.recommend.recommender import load_model_and_dataset
from esrgraph.seq.backbones import left_padded
from esrgraph.seq.build import build_evaluator


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("run", type=Path, help="a finished run's folder (its config.yaml, dataset/ and seq/)")
    parser.add_argument("--seed", type=int, default=None, help="the trained seed (default: the smallest)")
    parser.add_argument("--users", type=int, default=50_000, help="train.valid_users")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    cfg = load_config(args.run / "config.yaml", [f"train.valid_users={args.users}"])
    model, dataset, _ = load_model_and_dataset(args.run / "seq", args.run / "dataset", args.seed, "cpu")
    data = SequenceData(dataset, cfg.seq.max_length, left_padded(cfg.seq))
    evaluator = build_evaluator(cfg, data, torch.device("cpu"))
    rows = []
    for round_ in range(args.rounds):
        for precision in ("fp32", "bf16"):
            start = time.perf_counter()
            full = evaluator.evaluate(model, "valid", ["full"], encode_bf16=precision == "bf16")["full"]
            seconds = time.perf_counter() - start
            ndcg = {group: m["NDCG@10"] for group, m in full.items() if m.get("NDCG@10") is not None}
            rows.append({"round": round_, "precision": precision, "seconds": seconds, "ndcg@10": ndcg})
            print(f"round {round_} {precision}: {seconds:.1f} s, NDCG@10 {ndcg}", flush=True)
    if args.json:
        users = len(evaluator.valid_users) if evaluator.valid_users is not None else data.num_users
        meta = {"run": str(args.run), "users": users, "threads": torch.get_num_threads(), "cpu": platform.processor()}
        args.json.write_text(json.dumps({"meta": meta, "rows": rows}, indent=1) + "\n")


if __name__ == "__main__":
    main()
