"""The ``eval`` stage: test-split metrics of every trained seed, their mean ± std, and the popularity floor."""

from __future__ import annotations

from pathlib import Path

from ..artifacts import atomic_write_bytes, write_json
from ..data.dataset import load_dataset
from ..data.sequences import SequenceData
from ..eval.baselines import PopularityScorer
from ..eval.evaluate import Evaluator
from ..eval.metrics import aggregate
from ..eval.report import describe_model, report
from ..seq.store import load_model, trained_seeds
from ..training.device import resolve_device
from . import Stage, StageRun


def produce(ctx: StageRun, out: Path) -> dict:
    cfg = ctx.cfg
    ds = load_dataset(ctx.inputs["dataset"])
    device = resolve_device(cfg.train.device)
    data = SequenceData(ds, cfg.seq.max_length, cfg.seq.reference_padding)
    evaluator = Evaluator(data, cfg.eval, cfg.train.eval_batch_size, device)
    per_seed = {}
    for seed in trained_seeds(ctx.inputs["seq"]):
        model = load_model(ctx.inputs["seq"], seed, device)
        per_seed[str(seed)] = evaluator.evaluate(model, "test")
    floor = evaluator.evaluate(PopularityScorer(data.train_popularity().numpy(), device), "test")
    metrics = {
        "dataset": ds.name,
        "model": describe_model(cfg),
        "split": "test",
        "protocols": {
            "sampled": f"target vs {cfg.eval.sampled_negatives} sampled negatives",
            "full": "target vs every item outside the user's history",
        },
        "seeds": [int(s) for s in per_seed],
        "summary": aggregate(list(per_seed.values())),
        "per_seed": per_seed,
        "popularity": floor,
    }
    write_json(out / "metrics.json", metrics)
    atomic_write_bytes(out / "metrics.md", (report(metrics, cfg.eval.ks) + "\n").encode())
    return {"seeds": metrics["seeds"]}


STAGE = Stage(
    "eval", reads=lambda cfg: ("dataset", "seq"), section=lambda cfg: cfg.eval, produce=produce, per_variant=True
)
