"""Full-ranking evaluation speed at a large catalogue: items scored in blocks against one matrix.

Full ranking scores every user against every warm item. It used to do so in
one [users, items] matrix per batch of users; it now scores
``COLUMNS_PER_PASS`` items at a time (``esrgraph/eval/protocols.py``). This
ranks the same synthetic users both ways, alternating, and reports
milliseconds per user, their ratio, and whether the ranks agree. User and item
vectors are random (256 wide per view, two views: 512, as the default
dual-view model scores), histories drawn from a long-tailed popularity.

    python benchmarks/full_ranking_speed.py [--items 705883] [--users 2048] [--width 512] \\
        [--batch 256] [--rounds 3] [--json benchmarks/results/full_ranking_speed.json]
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from pathlib import Path

import numpy as np
import torch

from esrgraph.data.dataset import from_sequences
from esrgraph.data.sequences import SequenceData
from esrgraph.eval import protocols
from esrgraph.eval.protocols import rank_targets
from esrgraph.eval.vectors import VectorScorer


def synthetic(users: int, items: int, width: int, seed: int = 0) -> tuple[SequenceData, VectorScorer]:
    """Users with 5-30 items drawn by a Zipf-like popularity, and random vectors."""
    rng = np.random.default_rng(seed)
    cumulative = np.cumsum(1.0 / np.arange(1, items + 1) ** 0.8)
    lengths = rng.integers(5, 31, size=users)
    drawn = 1 + np.searchsorted(cumulative, rng.random(lengths.sum()) * cumulative[-1])
    sequences = np.split(drawn, np.cumsum(lengths)[:-1])
    data = SequenceData(from_sequences(sequences, items), max_length=50)
    user_vectors = torch.from_numpy(rng.standard_normal((users, width), dtype=np.float32))
    item_vectors = torch.from_numpy(rng.standard_normal((items + 1, width), dtype=np.float32)) / width**0.5
    return data, VectorScorer(user_vectors, item_vectors)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--items", type=int, default=705_883, help="catalogue size (the 10^7 benchmark's)")
    parser.add_argument("--users", type=int, default=2048)
    parser.add_argument("--width", type=int, default=512, help="user and item vector width")
    parser.add_argument("--batch", type=int, default=256, help="users per batch")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument(
        "--widths", default=str(protocols.COLUMNS_PER_PASS), help="block widths to time, comma-separated"
    )
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    data, scorer = synthetic(args.users, args.items, args.width)
    blocked = protocols.COLUMNS_PER_PASS
    ways = {"one matrix": data.num_warm + 1} | {f"blocks of {w}": int(w) for w in args.widths.split(",")}
    rows, ranks = [], {}
    for round_ in range(args.rounds):
        for way, columns in ways.items():
            protocols.COLUMNS_PER_PASS = columns
            start = time.perf_counter()
            ranks[way] = rank_targets(scorer, data, "test", "full", args.batch, torch.device("cpu"))[2]
            seconds = time.perf_counter() - start
            rows.append({"round": round_, "way": way, "columns": columns, "ms_per_user": 1000 * seconds / args.users})
            print(f"round {round_} {way}: {rows[-1]['ms_per_user']:.2f} ms a user", flush=True)
    protocols.COLUMNS_PER_PASS = blocked
    ratios = {
        way: [one["ms_per_user"] / row["ms_per_user"] for one, row in zip(rows[:: len(ways)], rows[i :: len(ways)])]
        for i, way in enumerate(ways)
        if i
    }
    same = all(np.array_equal(ranks["one matrix"], r) for r in ranks.values())
    for way, values in ratios.items():
        print(f"speed-up of {way} over one matrix, per round: {', '.join(f'{r:.2f}' for r in values)}")
    print(f"ranks identical: {same}")
    if args.json:
        meta = vars(args) | {"json": str(args.json), "threads": torch.get_num_threads(), "cpu": platform.processor()}
        meta |= {"warm_items": data.num_warm, "ranks_identical": same, "ratios": ratios}
        args.json.write_text(json.dumps({"meta": meta, "rows": rows}, indent=1) + "\n")


if __name__ == "__main__":
    main()
