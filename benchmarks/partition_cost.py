"""What splitting the item-attribute graph over machines would cost: DGL's own partitioner on a generated catalogue.

Graph pretraining runs in one process (README, "Several processes, GPUs").
This measures the one-off price of the alternative, `dgl.distributed.partition_graph`
(the input a DGL distributed pretraining would need on each machine), beside one
mini-batch pretraining epoch of the same size (`pretrain_speed.py --minibatch`).
Each method runs in its own process so its peak RSS is its own. Usage:

    python benchmarks/partition_cost.py [--items 1000000] [--parts 2] [--methods random metis] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import build_graph_speed  # its run_child: one process, its own resource usage (run from benchmarks/)


def partition(items: int, parts: int, method: str) -> dict:
    """Build the generated graph and partition it; times and the partitions' size on disk."""
    import dgl

    from esrgraph.gnn.synthetic import synthetic_edges
    from esrgraph.graph.build import to_dgl

    start = time.perf_counter()
    graph = to_dgl(synthetic_edges(items, seed=0))
    built = time.perf_counter() - start
    with tempfile.TemporaryDirectory() as out:
        start = time.perf_counter()
        dgl.distributed.partition_graph(graph, "items", parts, out, part_method=method, balance_edges=True)
        seconds = time.perf_counter() - start
        size = sum(f.stat().st_size for f in Path(out).rglob("*") if f.is_file())
    return {
        "method": method,
        "items": items,
        "parts": parts,
        "edges": int(graph.num_edges()),
        "graph_seconds": round(built, 1),
        "partition_seconds": round(seconds, 1),
        "partitions_mib": round(size / 2**20, 1),
    }


def run_child(items: int, parts: int, method: str) -> dict:
    """One method in its own process, with its own peak RSS."""
    command = [sys.executable, __file__, "--child", method, "--items", str(items), "--parts", str(parts)]
    code, out, err, usage = build_graph_speed.run_child(command)
    if code != 0:
        return {"method": method, "error": err.strip().splitlines()[-1:]}
    row = json.loads(out.strip().splitlines()[-1])
    row["peak_rss_gib"] = round(usage.ru_maxrss / 2**20, 2)
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--items", type=int, default=1_000_000)
    parser.add_argument("--parts", type=int, default=2)
    parser.add_argument("--methods", nargs="+", default=["random", "metis"])
    parser.add_argument("--json", type=Path)
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(partition(args.items, args.parts, args.child)))
        return
    rows = [run_child(args.items, args.parts, method) for method in args.methods]
    print("| method | items | edges | parts | graph (s) | partitioning (s) | on disk (MiB) | peak RSS (GiB) |")
    print("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
    for r in rows:
        if "error" in r:
            print(f"| {r['method']} | failed: {' '.join(r['error'])} | | | | | | |")
            continue
        cells = [r[k] for k in ("method", "items", "edges", "parts", "graph_seconds", "partition_seconds")]
        print("| " + " | ".join(map(str, cells + [r["partitions_mib"], r["peak_rss_gib"]])) + " |")
    if args.json:
        args.json.write_text(json.dumps(rows, indent=1) + "\n")


if __name__ == "__main__":
    main()
