"""Metrics as a person reads them: a named model, a title, the table with its popularity floor, a legend."""

from __future__ import annotations

from .metrics import format_table


def describe_model(cfg) -> str:
    """e.g. ``sasrec/llmesr+graph-view+readouts-fitted``."""
    name = f"{cfg.seq.backbone}/{cfg.seq.variant}"
    if cfg.seq.fusion != "none":
        name += f"+graph-{cfg.seq.fusion}"
    if cfg.seq.readouts.mode != "none":
        name += f"+readouts-{cfg.seq.readouts.mode}" + ("-all" if cfg.seq.readouts.groups == "all" else "")
    if cfg.train.loss != "bce":
        name += f" ({cfg.train.loss})"
    return name


def report(metrics: dict, ks) -> str:
    seeds = len(metrics["seeds"])
    title = f"{metrics['dataset']} · {metrics['model']} · test split · {seeds} seed{'s' if seeds > 1 else ''}"
    if seeds > 1:
        title += " (mean ± std)"
    legend = "; ".join(f"{name}: {text}" for name, text in metrics["protocols"].items())
    legend += "; popularity: every user's items ranked by training popularity (the floor)"
    table = format_table(metrics["summary"], ks, seeds, metrics.get("popularity"))
    return title + "\n\n" + table + "\n\n" + legend
