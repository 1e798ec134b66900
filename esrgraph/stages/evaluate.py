"""The ``eval`` stage: test-split metrics of every trained seed, their mean ± std, and the popularity floor."""

from __future__ import annotations

from pathlib import Path

from ..artifacts import atomic_write_bytes, write_json
from ..data.sequences import SequenceData
from ..data.store import load_dataset
from ..eval.baselines import PopularityScorer, RandomScorer
from ..eval.cold import cold_item_metrics
from ..eval.metrics import aggregate
from ..eval.report import describe_model, report
from ..seq.backbones import left_padded
from ..seq.build import build_evaluator
from ..seq.size_rule import objective_name
from ..seq.store import load_model, trained_seeds
from ..seq.variants import variant_spec
from ..training.device import resolve_device
from . import Stage, StageRun


def produce(ctx: StageRun, out: Path) -> dict:
    cfg = ctx.cfg
    ds = load_dataset(ctx.inputs["dataset"])
    device = resolve_device(cfg.train.device)
    data = SequenceData(ds, cfg.seq.max_length, left_padded(cfg.seq))
    evaluator = build_evaluator(cfg, data, device)
    tested = evaluator.test_users
    per_seed = {}
    for seed in trained_seeds(ctx.inputs["seq"]):
        model = load_model(ctx.inputs["seq"], seed, device)
        per_seed[str(seed)] = evaluator.evaluate(model, "test")
    popularity = PopularityScorer(data.train_popularity().numpy(), device)
    floor = evaluator.evaluate(popularity, "test")
    objective = objective_name(cfg.train.loss, ds.num_warm, variant_spec(cfg.seq).semantic)
    metrics = {
        "dataset": ds.name,
        "model": describe_model(cfg, objective),
        "objective": objective,
        "split": "test",
        "protocols": {
            "sampled": f"target vs {cfg.eval.sampled_negatives} sampled negatives",
            "full": "target vs every item outside the user's history",
        },
        "users": {"ranked": data.num_users if tested is None else len(tested), "of": data.num_users},
        "seeds": [int(s) for s in per_seed],
        "summary": aggregate(list(per_seed.values())),
        "per_seed": per_seed,
        "popularity": floor,
    }
    if len(ds.cold_queries):
        metrics["cold_items"] = cold_report(ctx, data, ds.cold_queries, popularity, device)
    write_json(out / "metrics.json", metrics)
    atomic_write_bytes(out / "metrics.md", (report(metrics, cfg.eval.ks) + "\n").encode())
    return {"seeds": metrics["seeds"]}


def cold_report(ctx: StageRun, data: SequenceData, queries, popularity, device) -> dict:
    """The cold-item protocol for every trained seed (mean ± std), with the popularity and random baselines."""
    cfg = ctx.cfg
    rank = lambda scorer: cold_item_metrics(scorer, data, queries, cfg.eval.ks, cfg.train.eval_batch_size, device)
    seeds = {str(s): rank(load_model(ctx.inputs["seq"], s, device)) for s in trained_seeds(ctx.inputs["seq"])}
    wrap = lambda per: {"cold": per}  # aggregate() reads {protocol: {group: metrics}}
    summary = aggregate([wrap(m) for m in seeds.values()])["cold"]
    return {
        "queries": len(queries),
        "cold_items": data.num_items - data.num_warm,
        "summary": summary,
        "per_seed": seeds,
        "popularity": rank(popularity),
        "random": rank(RandomScorer(data.num_items, 0, device)),
    }


STAGE = Stage(
    "eval", reads=lambda cfg: ("dataset", "seq"), section=lambda cfg: cfg.eval, produce=produce, per_variant=True
)
