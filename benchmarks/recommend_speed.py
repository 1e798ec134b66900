"""Recommending speed, and the approximate index's recall against exact ranking.

* ``all``: every user of a trained run ranked at k = 20 and written as JSON
  Lines (``esr recommend --all``'s work after loading), seconds;
* ``one``: one ``rec.recommend(history)`` call for a single history after
  loading, median milliseconds over many calls;
* ``recall``: a generated catalogue (default one million items, 128
  dimensions, clustered like real item embeddings), the approximate index's
  recall@k against exact top-k for random user vectors, and both search times.

    python benchmarks/recommend_speed.py --run runs/amazon-beauty-xxxx [--items 1000000] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def measure_run(run_dir: str, k: int, calls: int) -> dict:
    import torch

    from esrgraph.api import load_recommender
    from esrgraph.recommend.io import write_rows

    start = time.perf_counter()
    rec = load_recommender(run_dir)
    loading = time.perf_counter() - start
    with tempfile.TemporaryDirectory() as folder:
        start = time.perf_counter()
        users = write_rows(
            Path(folder) / "all.jsonl", ((u, [r.as_dict() for r in top]) for u, top in rec.recommend_all(k=k))
        )
        every = time.perf_counter() - start
    history = [rec.dataset.item_ids[i - 1] for i in rec.dataset.sequence(0)]
    rec.recommend(history, k=k)  # warm up
    times = []
    for _ in range(calls):
        start = time.perf_counter()
        rec.recommend(history, k=k)
        times.append(time.perf_counter() - start)
    return {
        "run": run_dir,
        "users": users,
        "items": rec.dataset.num_items,
        "k": k,
        "threads": torch.get_num_threads(),
        "load_s": round(loading, 2),
        "all_users_s": round(every, 2),
        "one_call_ms": round(1000 * statistics.median(times), 2),
    }


def measure_recall(items: int, dim: int, queries: int, k: int, probes: list[int]) -> list[dict]:
    import numpy as np
    import torch

    from esrgraph.recommend.index import ApproximateIndex, ExactIndex, recall_at_k

    rng = np.random.default_rng(0)
    centres = rng.normal(size=(1000, dim)).astype(np.float32)
    table = centres[rng.integers(0, 1000, items)] + 0.5 * rng.normal(size=(items, dim)).astype(np.float32)
    table = torch.from_numpy(np.vstack([np.zeros((1, dim), np.float32), table]))
    users = torch.from_numpy(
        centres[rng.integers(0, 1000, queries)] + rng.normal(size=(queries, dim)).astype(np.float32)
    )
    start = time.perf_counter()
    exact_scores, exact_ids = ExactIndex(table).search(users, k)
    exact_s = time.perf_counter() - start
    rows = []
    for probe in probes:
        start = time.perf_counter()
        index = ApproximateIndex(table, probes=probe)
        built = time.perf_counter() - start
        start = time.perf_counter()
        _, ids = index.search(users, k)
        searched = time.perf_counter() - start
        rows.append(
            {
                "items": items,
                "dim": dim,
                "queries": queries,
                "k": k,
                "probes": probe,
                "lists": index.index.nlist,
                "recall": round(recall_at_k(exact_ids, ids), 4),
                "build_s": round(built, 1),
                "search_ms_per_query": round(1000 * searched / queries, 3),
                "exact_ms_per_query": round(1000 * exact_s / queries, 3),
            }
        )
        print(json.dumps(rows[-1]), flush=True)
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--run", action="append", default=[], help="a trained run directory (repeatable)")
    parser.add_argument("-k", type=int, default=20)
    parser.add_argument("--calls", type=int, default=200)
    parser.add_argument("--items", type=int, default=1_000_000)
    parser.add_argument("--dim", type=int, default=128)
    parser.add_argument("--queries", type=int, default=1000)
    parser.add_argument("--probes", default="8,16,32")
    parser.add_argument("--json")
    args = parser.parse_args()
    runs = [measure_run(r, args.k, args.calls) for r in args.run]
    for r in runs:
        print(json.dumps(r), flush=True)
    recall = measure_recall(args.items, args.dim, args.queries, args.k, [int(p) for p in args.probes.split(",")])
    machine = f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores"
    print(f"\nmachine: {machine}\n")
    print(
        "| run | users | items | load s | all users, k = 20, written s | one call ms |\n|---|---:|---:|---:|---:|---:|"
    )
    for r in runs:
        print(
            f"| {Path(r['run']).name} | {r['users']:,} | {r['items']:,} | {r['load_s']} | {r['all_users_s']} "
            f"| {r['one_call_ms']} |"
        )
    print(
        "\n| items | probes / lists | recall@k | search ms/query | exact ms/query | build s |\n"
        "|---:|---|---:|---:|---:|---:|"
    )
    for r in recall:
        print(
            f"| {r['items']:,} | {r['probes']} / {r['lists']} | {r['recall']} | {r['search_ms_per_query']} "
            f"| {r['exact_ms_per_query']} | {r['build_s']} |"
        )
    if args.json:
        Path(args.json).write_text(json.dumps({"machine": machine, "runs": runs, "recall": recall}, indent=2))


if __name__ == "__main__":
    main()
