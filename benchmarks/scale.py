"""Scale: every stage of the default pipeline on generated data of growing size; wall time and peak memory.

The generated data look like real sequential data where it matters for
cost: item popularity follows a Zipf law (a long tail), history lengths a
shifted geometric law (every user at least 5 items, mean about 9), items
carry a title of 4–10 words, a brand and a 3-level category path drawn from
vocabularies whose sizes grow with the catalogue, and a price. Users' item
choices follow the popularity law.

Each stage runs as its own ``esr`` command in a child process; its wall
time and the child's peak RSS are recorded. With several sizes the cost of
each stage is fitted as a power of the number of interactions (the slope of
log time against log interactions).

    python benchmarks/scale.py --sizes 1e5,1e6 [--items-per-user 1] [--mean-length 9] [--epochs 1] \\
        [--eval-users 100000] [--json benchmarks/results/scale.json] [--root /tmp/scale]
    # the largest size: 1M users and 1M items
    python benchmarks/scale.py --sizes 3e7 --mean-length 30 --eval-users 100000 --root /tmp/scale
    # an interrupted run, from the stage it stopped in (the data and earlier stages' outputs are kept)
    python benchmarks/scale.py --sizes 1e7 --from-stage train-seq --root /tmp/scale
    # some stages only, with a setting changed in every stage's config
    python benchmarks/scale.py --sizes 3e7 --to-stage pretrain-gnn -o embed.users=items --root /tmp/scale

A size is the number of interactions; users and items follow from it
(interactions / ``--mean-length`` users, the same number of items by default).
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

from esrgraph.gnn.synthetic import zipf_choice

ROOT = Path(__file__).resolve().parents[1]
STAGES = ("prepare", "embed", "build-graph", "pretrain-gnn", "train-seq")
WORDS = 20_000  # title vocabulary
MEAN_LENGTH = 9
MIN_LENGTH = 5


def generate(
    folder: Path, interactions: int, items_per_user: float, mean_length: float = MEAN_LENGTH, seed: int = 0
) -> dict:
    """Write ``sequences.txt`` and ``items.csv`` of about ``interactions`` interactions into ``folder``."""
    rng = np.random.default_rng(seed)
    users = max(int(interactions / mean_length), 10)
    items = max(int(users * items_per_user), 20)
    lengths = MIN_LENGTH + rng.geometric(1.0 / (mean_length - MIN_LENGTH + 1), size=users) - 1
    # Zipf: a long tail of rarely seen items; drawn at once (a draw per user re-reads every item's weight)
    chosen = zipf_choice(rng, items, int(lengths.sum()), exponent=1.05) + 1
    folder.mkdir(parents=True, exist_ok=True)
    with open(folder / "sequences.txt", "w") as out:
        for user, history in enumerate(np.split(chosen, np.cumsum(lengths)[:-1])):
            out.write(f"{user} " + " ".join(map(str, history)) + "\n")
    _write_items(folder / "items.csv", items, rng)
    return {"users": users, "items": items, "interactions": len(chosen)}


def _write_items(path: Path, items: int, rng: np.random.Generator) -> None:
    brands = max(items // 20, 10)
    top, middle, leaf = 20, max(items // 500, 40), max(items // 50, 200)
    with open(path, "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["item_id", "title", "brand", "categories", "price"])
        for item in range(1, items + 1):
            words = rng.integers(0, WORDS, size=rng.integers(4, 11))
            title = " ".join(f"w{w}" for w in words)
            path_ids = (rng.integers(top), rng.integers(middle), rng.integers(leaf))
            categories = f"c{path_ids[0]}|c{path_ids[0]}.{path_ids[1]}|c{path_ids[0]}.{path_ids[1]}.{path_ids[2]}"
            writer.writerow([item, title, f"b{rng.integers(brands)}", categories, f"{rng.lognormal(3, 1):.2f}"])


def config(folder: Path, epochs: int, eval_users: int | None) -> Path:
    path = folder / "config.yaml"
    tested = f"eval:\n  users: {eval_users}\n" if eval_users else ""
    path.write_text(
        f"""dataset:
  name: scale
  interactions: {{path: sequences.txt, format: sequences}}
  metadata:
    path: items.csv
    format: csv
    key: item_id
    fields: {{description: null}}
    category_separator: "|"
    categories_are_path: true
train:
  epochs: {epochs}
  seeds: [1]
run:
  root: {folder / "runs"}
{tested}"""
    )
    return path


def run_stage(stage: str, config_path: Path, overrides: tuple[str, ...] = (), logs: Path | None = None) -> dict:
    """One stage as its own command (``-o`` ``overrides``); its wall time and the child's peak RSS. Its log
    goes to ``logs`` (default: the config's folder)."""
    log_path = (logs or config_path.parent) / f"{stage}.log"
    command = [sys.executable, "-m", "cli.main", "-q", stage, str(config_path)]
    for override in overrides:
        command += ["-o", override]
    start = time.perf_counter()
    with open(log_path, "w") as log:
        child = subprocess.Popen(command, cwd=ROOT, stdout=log, stderr=log)
        _, status, usage = os.wait4(child.pid, 0)  # this child's own peak memory, not the largest so far
    seconds = time.perf_counter() - start
    code = os.waitstatus_to_exitcode(status)
    row = {"stage": stage, "seconds": round(seconds, 1), "peak_rss_gib": round(usage.ru_maxrss / 2**20, 2)}
    row["ok"] = code == 0
    if code:
        lines = log_path.read_text().strip().splitlines()
        row["error"] = lines[-1] if lines else f"exit {code}"
    return row


def fitted_exponents(results: list[dict]) -> dict:
    """Per stage, the slope of log seconds against log interactions over the sizes measured."""
    out = {}
    for stage in STAGES:
        points = [
            (r["data"]["interactions"], s["seconds"])
            for r in results
            for s in r["stages"]
            if s["stage"] == stage and s["ok"] and s["seconds"] > 0
        ]
        if len(points) >= 2:
            x, y = np.log([p[0] for p in points]), np.log([p[1] for p in points])
            out[stage] = round(float(np.polyfit(x, y, 1)[0]), 2)
    return out


def _data(folder: Path, size: int, args) -> dict:
    """Generate the data, or read back what an earlier run generated when resuming from a later stage."""
    record = folder / "data.json"
    if args.from_stage == STAGES[0]:
        data = generate(folder, size, args.items_per_user, args.mean_length)
        record.write_text(json.dumps(data))
        return data
    if not record.is_file():
        raise SystemExit(f"{record}: no generated data to resume from; run from the first stage")
    return json.loads(record.read_text())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="1e5,1e6", help="interactions per dataset, comma-separated")
    parser.add_argument("--items-per-user", type=float, default=1.0)
    parser.add_argument("--mean-length", type=float, default=MEAN_LENGTH, help="mean items per user")
    parser.add_argument(
        "--from-stage",
        choices=STAGES,
        default=STAGES[0],
        help="run from this stage on, over the data and earlier outputs under --root (resuming a stopped run)",
    )
    parser.add_argument("--to-stage", choices=STAGES, default=STAGES[-1], help="stop after this stage")
    parser.add_argument(
        "-o",
        "--override",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="a config override passed to every stage (repeatable); resume with the same overrides",
    )
    parser.add_argument("--epochs", type=int, default=1, help="training epochs (train-seq)")
    parser.add_argument(
        "--eval-users", type=int, default=None, help="the test split ranks a fixed sample of this many users"
    )
    parser.add_argument("--root", default="/tmp/esrgraph-scale")
    parser.add_argument("--json", default=None)
    args = parser.parse_args()
    if args.mean_length <= MIN_LENGTH:
        parser.error(f"--mean-length must be above {MIN_LENGTH} (every user has at least {MIN_LENGTH} items)")
    if STAGES.index(args.to_stage) < STAGES.index(args.from_stage):
        parser.error(f"--to-stage {args.to_stage} comes before --from-stage {args.from_stage}")
    results = []
    for size in (int(float(s)) for s in args.sizes.split(",")):
        folder = Path(args.root) / f"n{size}"
        data = _data(folder, size, args)
        print(f"{size:,} interactions: {data}", flush=True)
        cfg = config(folder, args.epochs, args.eval_users)
        stages = []
        for stage in STAGES[STAGES.index(args.from_stage) : STAGES.index(args.to_stage) + 1]:
            stages.append(run_stage(stage, cfg, tuple(args.override)))
            print(f"  {stages[-1]}", flush=True)
            if not stages[-1]["ok"]:
                break
        results.append({"size": size, "data": data, "stages": stages})
    report = {
        "machine": platform.platform(),
        "cores": os.cpu_count(),
        "results": results,
        "exponents": fitted_exponents(results),
        "overrides": args.override,
    }
    print(json.dumps(report["exponents"]))
    if args.json:
        Path(args.json).write_text(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
