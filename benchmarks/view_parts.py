"""What each view of a trained multi-view recommender ranks on its own: NDCG@10 by user and item group.

A dual-view model scores an item by the sum of its views' dot products. This
scores a finished run's model with every view in turn, the other views' parts
of the user vector set to zero, beside the sum, on the validation and test
splits under full ranking: which view has (or has not) learned the tail items.
With ``--group-scales``, the first view's part of the user vector is also
scaled by one factor for tail users and another for head users, every pair
of the given factors: whether the views' balance should differ by user group.

    python benchmarks/view_parts.py RUN_DIR [--seed 1] [--group-scales 0.5,1,1.5] [--json OUT.json]
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import torch

from esrgraph.config import load_config
from esrgraph.data.sequences import SequenceData
from esrgraph.recommend.recommender import load_model_and_dataset
from esrgraph.seq.backbones import left_padded
from esrgraph.seq.build import build_evaluator


def one_view(encode, keep: slice):
    """``encode`` with every part of the user vector outside ``keep`` zeroed."""

    def user_vectors(items, lengths, users=None):
        vectors = encode(items, lengths, users)
        mask = torch.zeros_like(vectors)
        mask[:, keep] = 1
        return vectors * mask

    return user_vectors


def group_scaled(encode, part: slice, tail_users: torch.Tensor, tail: float, head: float):
    """``encode`` with the ``part`` of each user's vector times ``tail`` or ``head`` by the user's group."""

    def user_vectors(items, lengths, users=None):
        vectors = encode(items, lengths, users).clone()
        factor = torch.where(tail_users[users], torch.tensor(tail), torch.tensor(head)).to(vectors.dtype)
        vectors[:, part] *= factor[:, None]
        return vectors

    return user_vectors


def scores(model, evaluator) -> dict:
    """Validation and test NDCG@10 by group under full ranking."""
    row = {}
    for split in ("valid", "test"):
        metrics = evaluator.evaluate(model, split, ["full"])["full"]
        row[split] = {group: round(values["NDCG@10"], 4) for group, values in metrics.items()}
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("run", type=Path, help="a finished run's folder (its config.yaml and seq/)")
    parser.add_argument("--seed", type=int, default=None, help="the trained seed (default: the smallest)")
    parser.add_argument("--group-scales", help="comma-separated factors for the first view's user part, by group")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    cfg = load_config(args.run / "config.yaml")
    model, dataset, seed = load_model_and_dataset(args.run / "seq", args.run / "dataset", args.seed, "cpu")
    data = SequenceData(dataset, cfg.seq.max_length, left_padded(cfg.seq))
    evaluator = build_evaluator(cfg, data)
    encode, width = model.user_vectors, cfg.seq.hidden_size
    parts = {"every view (the model)": slice(None)}
    parts |= {name: slice(i * width, (i + 1) * width) for i, name in enumerate(model.views.names)}
    results = {"run": str(args.run), "seed": seed, "protocol": "full", "metric": "NDCG@10", "views": {}}
    for label, keep in parts.items():
        model.user_vectors = one_view(encode, keep)
        results["views"][label] = row = scores(model, evaluator)
        print(f"{label:24s} {row}", flush=True)
    if args.group_scales:
        factors = [float(f) for f in args.group_scales.split(",")]
        first, results["group_scales"] = model.views.names[0], {}
        for tail in factors:
            for head in factors:
                model.user_vectors = group_scaled(encode, slice(0, width), data.tail_users, tail, head)
                label = f"{first} x{tail} for tail users, x{head} for head users"
                results["group_scales"][label] = row = scores(model, evaluator)
                print(f"{label} {row}", flush=True)
    if args.json:
        args.json.write_text(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
