"""Which part of the weight average moves each user and item group: validation of raw, averaged and mixed weights.

The weight average (``train.weight_average``) is validated beside the raw
weights, as a whole. This reads the latest epoch checkpoint an unfinished run
keeps (``RUN_DIR/seq.checkpoints/seed-<S>/``: interrupt ``esr train-seq`` after
the epoch to look at; a finished run deletes its checkpoints) and validates,
under full ranking, the raw weights, the average, and the two mixtures: the
averaged sequence encoder with the raw item views, and the reverse. It
reports NDCG@10 by group and the mean length of tail and head items' id
vectors in each.

    python benchmarks/average_parts.py RUN_DIR [--seed 1] [--json OUT.json]
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import torch

from esrgraph.api import recommender_inputs
from esrgraph.config import load_config
from esrgraph.runs import Run
from esrgraph.seq.build import build_evaluator, build_recommender
from esrgraph.training.checkpoint import load_state


def latest_checkpoint(run: Path, seed: int) -> Path:
    found = sorted((run / "seq.checkpoints" / f"seed-{seed}").glob("epoch-*.pt"))
    if not found:
        raise SystemExit(f"{run}/seq.checkpoints/seed-{seed}: no epoch checkpoint (a finished run deletes them)")
    return found[-1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("run", type=Path, help="an unfinished run's folder (its config.yaml and seq.checkpoints/)")
    parser.add_argument("--seed", type=int, default=None, help="the seed (default: the run's first)")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    cfg = load_config(args.run / "config.yaml")
    seed = cfg.train.seeds[0] if args.seed is None else args.seed
    inputs = recommender_inputs(Run(cfg))
    data = inputs.sequences(cfg)
    evaluator = build_evaluator(cfg, data)
    path = latest_checkpoint(args.run, seed)
    state = load_state(path)
    model = build_recommender(cfg, inputs, seed)
    model.load_state_dict(state["model"])
    # the average holds the trained parameters in the model's order (WeightAverage.params)
    raw = {name: p.detach().clone() for name, p in model.named_parameters() if p.requires_grad}
    average = {name: state["average"][str(i)] for i, name in enumerate(raw)}
    item_part = lambda name: name.startswith("views.")
    mixtures = {
        "raw": lambda name: raw[name],
        "average": lambda name: average[name],
        "averaged encoder, raw items": lambda name: raw[name] if item_part(name) else average[name],
        "raw encoder, averaged items": lambda name: average[name] if item_part(name) else raw[name],
    }
    tail = data.tail_items.numpy()[1:]
    results = {"checkpoint": str(path), "protocol": "full", "metric": "NDCG@10", "weights": {}}
    for label, pick in mixtures.items():
        with torch.no_grad():
            for name, p in model.named_parameters():
                if name in raw:
                    p.copy_(pick(name))
        metrics = evaluator.evaluate(model, "valid", ["full"])["full"]
        lengths = model.views.ids.weight.detach()[1 : len(tail) + 1].norm(dim=1).numpy()
        row = {group: round(values["NDCG@10"], 4) for group, values in metrics.items()}
        row |= {"id_length_tail": round(float(np.mean(lengths[tail])), 3)}
        row |= {"id_length_head": round(float(np.mean(lengths[~tail])), 3)}
        results["weights"][label] = row
        print(f"{label:28s} {row}", flush=True)
    if args.json:
        args.json.write_text(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
