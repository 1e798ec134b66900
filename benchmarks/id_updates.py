"""Training step cost against catalogue size: dense Adam over the id table or sparse (row-wise) updates.

With the sampled softmax a step reads a few thousand id rows, but dense Adam
(and its zeroed gradient) still touches every row, so a step's cost grows
with the catalogue. This times one optimiser step (forward, backward, Adam,
the weight average) of the default model trained with the sampled softmax,
``train.sparse_ids`` false and true, on generated histories over catalogues
of growing size (every item seen at least once; the rest Zipf-distributed).
With sparse ids the id table's weight average is lazy (only the rows a step
changes are folded in); ``--eager-average`` adds a row that folds every row
every step, as before the lazy average.

Each cell: seconds a step (of which the weight average's).

    python benchmarks/id_updates.py [--items 10000,100000,700000] [--variant dual-view] \\
        [--steps 20] [--eager-average] [--json benchmarks/results/id_updates.json]
"""

from __future__ import annotations

import argparse
import json
import platform
import time

import numpy as np
import torch

from esrgraph.config import GroupsConfig, load_config
from esrgraph.data.dataset import Dataset
from esrgraph.data.groups import tail_items_by_popularity, tail_users_by_length
from esrgraph.gnn.synthetic import zipf_choice
from esrgraph.seq.build import RecommenderInputs, build_recommender, prepare_training
from esrgraph.seq.optimiser import recommender_optimiser
from esrgraph.seq.variants import variant_spec
from esrgraph.training.averaging import WeightAverage

MEAN_LENGTH = 10
LLM_WIDTH = 384  # the bundled sentence model's width


def generated(items: int, seed: int = 0) -> Dataset:
    """As many users as items, histories of 3..17 items: every item once, then Zipf draws."""
    rng = np.random.default_rng(seed)
    lengths = rng.integers(3, 2 * MEAN_LENGTH - 2, size=items)
    chosen = zipf_choice(rng, items, int(lengths.sum()), exponent=1.05) + 1
    chosen[rng.permutation(len(chosen))[:items]] = np.arange(1, items + 1)  # no item without interactions
    offsets = np.concatenate([[0], np.cumsum(lengths)])
    popularity = np.bincount(chosen, minlength=items + 1)
    tail_users, _ = tail_users_by_length(lengths - 1, GroupsConfig())
    tail_items, _ = tail_items_by_popularity(popularity, GroupsConfig())
    names = [str(i) for i in range(items)]
    return Dataset("generated", names, names, offsets, chosen, [None] * items, popularity, tail_items, tail_users)


def step_seconds(items: int, variant: str, sparse: bool, steps: int, lazy: bool = True) -> dict:
    overrides = [f"seq.variant={variant}", "train.loss=sampled_softmax", f"train.sparse_ids={sparse}"]
    cfg = load_config(None, [*overrides, "train.batch_size=128"])
    inputs = RecommenderInputs(generated(items))
    if variant_spec(cfg.seq).text:  # random stand-ins for the sentence model's rows and their PCA
        rows = np.random.default_rng(1).normal(size=(items + 1, LLM_WIDTH)).astype(np.float32)
        inputs.llm, inputs.pca = rows, rows[:, : cfg.seq.hidden_size] * 0.05
    model = build_recommender(cfg, inputs, seed=0)
    data = inputs.sequences(cfg)
    prepare_training(cfg, inputs, model, data)
    optimizer = recommender_optimiser(model, cfg.train)
    average = WeightAverage(model, cfg.train.weight_average)
    users = data.trainable_users()
    generator = torch.Generator().manual_seed(0)
    rng = np.random.default_rng(0)
    times, averaging = [], []
    for step in range(steps + 3):  # 3 warm-up steps
        batch = model.training_batch(rng.choice(users, cfg.train.batch_size, replace=False), generator)
        start = time.perf_counter()
        optimizer.zero_grad(set_to_none=True)
        model(batch).backward()
        t0 = time.perf_counter()
        if lazy:
            average.before_step()  # as the training loop does: without it every row is folded every step
        t1 = time.perf_counter()
        optimizer.step()
        t2 = time.perf_counter()
        average.update()
        end = time.perf_counter()
        if step >= 3:
            averaging.append((t1 - t0) + (end - t2))
            times.append(end - start)
    return {
        "items": items,
        "variant": variant,
        "sparse_ids": sparse,
        "lazy_average": lazy and sparse,
        "seconds_per_step": round(float(np.median(times)), 4),
        "average_seconds_per_step": round(float(np.median(averaging)), 4),  # the weight average's share
        "threads": torch.get_num_threads(),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--items", default="10000,100000,700000")
    parser.add_argument("--variant", default="dual-view")
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--eager-average", action="store_true", help="also time sparse ids with the eager average")
    parser.add_argument("--json")
    args = parser.parse_args()
    modes = [(False, True), (True, True)] + ([(True, False)] if args.eager_average else [])
    names = ["dense Adam", "sparse ids"] + (["sparse ids, eager average"] if args.eager_average else [])
    table = []
    for items in [int(float(n)) for n in args.items.split(",")]:
        table.append([step_seconds(items, args.variant, sparse, args.steps, lazy) for sparse, lazy in modes])
        print("\n".join(json.dumps(r) for r in table[-1]), flush=True)
    print("\n| items | " + " | ".join(f"{n} s/step" for n in names) + " | speed-up |")
    print("|---:" * (len(names) + 2) + "|")
    for row in table:
        cells = " | ".join(f"{r['seconds_per_step']} ({r['average_seconds_per_step']})" for r in row)
        print(f"| {row[0]['items']:,} | {cells} | {row[0]['seconds_per_step'] / row[1]['seconds_per_step']:.2f}× |")
    if args.json:
        rows = [r for row in table for r in row]
        with open(args.json, "w") as out:
            json.dump({"cpu": platform.processor() or platform.machine(), "rows": rows}, out, indent=1)


if __name__ == "__main__":
    main()
