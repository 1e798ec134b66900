"""The ``eval`` stage: test-split metrics of every trained seed, and their mean ± std."""

from __future__ import annotations

from pathlib import Path

from ..artifacts import atomic_write_bytes, read_json, write_json
from ..data import stage as data_stage
from ..runs import Run
from ..seq import stage as seq_stage
from ..seq.batches import SequenceData
from ..seq.distributed import resolve_device
from .config import EvalConfig
from .evaluate import Evaluator
from .metrics import aggregate, format_table

STAGE = "eval"


def evaluate(run: Run, resume: bool | str = False) -> tuple[Path, dict]:
    """Evaluate the trained models (training them first if needed, ``resume`` as in
    :func:`~esrgraph.seq.stage.train_seq`); returns (folder, metrics)."""
    seq_dir = seq_stage.train_seq(run, resume=resume)
    cfg = run.cfg

    def produce(out: Path) -> dict:
        ds = data_stage.prepare(run)
        device = resolve_device(cfg.train.device)
        data = SequenceData(ds, cfg.seq.max_length, cfg.seq.reference_padding)
        evaluator = Evaluator(data, cfg.eval, cfg.train.eval_batch_size, device)
        per_seed = {}
        for seed in seq_stage.trained_seeds(seq_dir):
            model = seq_stage.load_model(seq_dir, seed, device)
            per_seed[str(seed)] = evaluator.evaluate(model, "test")
        summary = aggregate(list(per_seed.values()))
        metrics = {"dataset": ds.name, "model": describe_model(cfg), "split": "test",
                   "protocols": {"sampled": f"target vs {cfg.eval.sampled_negatives} sampled negatives",
                                 "full": "target vs every item outside the user's history"},
                   "seeds": [int(s) for s in per_seed], "summary": summary, "per_seed": per_seed}
        write_json(out / "metrics.json", metrics)
        atomic_write_bytes(out / "metrics.md", (report(metrics, cfg.eval.ks) + "\n").encode())
        return {"seeds": metrics["seeds"]}

    out = run.run_stage(STAGE, *_section_and_upstream(run), produce)
    return out, read_json(out / "metrics.json")


def _section_and_upstream(run: Run) -> tuple[EvalConfig, dict[str, str]]:
    """What the stage key is made of, shared by :func:`evaluate` and :func:`finished`."""
    return run.cfg.eval, {seq_stage.STAGE: run.stage_key(seq_stage.STAGE)}


def finished(run: Run) -> dict | None:
    """The metrics of an up-to-date evaluation of this config, or None; trains and evaluates nothing."""
    if not seq_stage.is_trained(run):
        return None
    key = run.key(STAGE, *_section_and_upstream(run))
    return read_json(run.stage_dir(STAGE) / "metrics.json") if run.is_current(STAGE, key) else None


def describe_model(cfg) -> str:
    """e.g. ``sasrec/llmesr+graph-gate+heads``."""
    name = f"{cfg.seq.backbone}/{cfg.seq.variant}"
    if cfg.seq.fusion != "none":
        name += f"+graph-{cfg.seq.fusion}"
    if cfg.seq.heads.enabled:
        name += "+heads-after" if cfg.seq.heads.fit == "after" else "+heads"
    return name


def report(metrics: dict, ks) -> str:
    seeds = len(metrics["seeds"])
    title = f"{metrics['dataset']} · {metrics['model']} · test split · {seeds} seed{'s' if seeds > 1 else ''}"
    if seeds > 1:
        title += " (mean ± std)"
    legend = "; ".join(f"{name}: {text}" for name, text in metrics["protocols"].items())
    return title + "\n\n" + format_table(metrics["summary"], ks, seeds) + "\n\n" + legend
