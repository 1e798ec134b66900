"""Metrics as a person reads them: a named model, a title, the table with its popularity floor, a legend."""

from __future__ import annotations

from .metrics import format_table


def describe_model(cfg, objective: str | None = None) -> str:
    """e.g. ``sasrec/llmesr+graph-view+readouts-fitted (ce)``: backbone, variant, extensions, objective
    (``objective``: the one ``train.loss`` resolved to, where it says auto)."""
    name = f"{cfg.seq.backbone}/{cfg.seq.variant}"
    if cfg.seq.fusion != "none":
        name += f"+graph-{cfg.seq.fusion}"
    if cfg.seq.readouts.mode != "none":
        name += f"+readouts-{cfg.seq.readouts.mode}" + ("-all" if cfg.seq.readouts.groups == "all" else "")
    name += f" ({objective or cfg.train.loss})"
    return name


def report(metrics: dict, ks) -> str:
    seeds = len(metrics["seeds"])
    title = f"{metrics['dataset']} · {metrics['model']} · test split · {seeds} seed{'s' if seeds > 1 else ''}"
    if seeds > 1:
        title += " (mean ± std)"
    users = metrics.get("users")
    if users and users["ranked"] < users["of"]:
        title += f" · {users['ranked']:,} of {users['of']:,} users, a fixed random sample (eval.users)"
    legend = "; ".join(f"{name}: {text}" for name, text in metrics["protocols"].items())
    legend += "; popularity: every user's items ranked by training popularity (the floor)"
    table = format_table(metrics["summary"], ks, seeds, metrics.get("popularity"))
    text = title + "\n\n" + table + "\n\n" + legend
    if "cold_items" in metrics:
        text += "\n\n" + cold_table(metrics["cold_items"], seeds)
    return text


def cold_table(cold: dict, seeds: int) -> str:
    """The cold-item protocol's HR@10 and NDCG@10, model against the popularity and random baselines."""
    lines = [
        f"cold-item protocol: {cold['queries']:,} held-out interactions, {cold['cold_items']:,} cold items",
        "",
        "| ranked | model | HR@10 | NDCG@10 |",
        "|---|---|---|---|",
    ]
    for name in ("among_cold", "among_all"):
        m = cold["summary"][name]
        cell = lambda v: f"{v['mean']:.4f} ± {v['std']:.4f}" if seeds > 1 else f"{v['mean']:.4f}"
        lines.append(f"| {name.replace('_', ' ')} | model | {cell(m['HR@10'])} | {cell(m['NDCG@10'])} |")
        for base in ("popularity", "random"):
            b = cold[base][name]
            lines.append(f"| {name.replace('_', ' ')} | {base} | {b['HR@10']:.4f} | {b['NDCG@10']:.4f} |")
    return "\n".join(lines)
