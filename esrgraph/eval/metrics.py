"""Ranking metrics by user and item group, and their mean ± std over seeds.

A rank is the number of candidate items scored at least as high as the target
(ties count against the target, so a constant scorer earns nothing); rank 0 is
a hit at the top. HR@K = [rank < K], NDCG@K = 1 / log2(rank + 2) when
rank < K, MRR = 1 / (rank + 1).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

GROUPS = ("overall", "tail_users", "head_users", "tail_items", "head_items")
VALID_METRIC = "NDCG@10"  # what early stopping, θ tuning and the ablation compare
COUNTS = ("users", "queries")  # how many rankings a group's metrics average over, not metrics


def metric_names(ks: Sequence[int]) -> list[str]:
    return [f"HR@{k}" for k in ks] + [f"NDCG@{k}" for k in ks] + ["MRR"]


def metrics_from_ranks(ranks: np.ndarray, ks: Sequence[int]) -> dict[str, float | None]:
    """The metrics of a set of ranks; None for an empty group (e.g. no head users)."""
    ranks = np.asarray(ranks, dtype=np.float64)
    if len(ranks) == 0:
        return {name: None for name in metric_names(ks)}
    out = {}
    for k in ks:
        out[f"HR@{k}"] = float((ranks < k).mean())
    for k in ks:
        out[f"NDCG@{k}"] = float(np.where(ranks < k, 1.0 / np.log2(ranks + 2.0), 0.0).mean())
    out["MRR"] = float((1.0 / (ranks + 1.0)).mean())
    return out


def group_masks(
    users: np.ndarray, targets: np.ndarray, tail_users: np.ndarray, tail_items: np.ndarray
) -> dict[str, np.ndarray]:
    tu, ti = tail_users[users], tail_items[targets]
    return {
        "overall": np.ones(len(users), bool),
        "tail_users": tu,
        "head_users": ~tu,
        "tail_items": ti,
        "head_items": ~ti,
    }


def grouped_metrics(
    ranks: np.ndarray,
    users: np.ndarray,
    targets: np.ndarray,
    tail_users: np.ndarray,
    tail_items: np.ndarray,
    ks: Sequence[int],
) -> dict[str, dict[str, float]]:
    """{group: {metric: value, "users": count}} for every group."""
    out = {}
    for group, mask in group_masks(users, targets, tail_users, tail_items).items():
        out[group] = {"users": int(mask.sum()), **metrics_from_ranks(ranks[mask], ks)}
    return out


def aggregate(runs: list[dict[str, dict[str, dict[str, float]]]]) -> dict:
    """Mean and std (sample, ddof=1; 0 for one run) over runs of {protocol: {group: {metric: value}}}."""
    out: dict = {}
    for protocol in runs[0]:
        out[protocol] = {}
        for group, metrics in runs[0][protocol].items():
            out[protocol][group] = {k: metrics[k] for k in COUNTS if k in metrics}
            for name in metrics:
                if name in COUNTS:
                    continue
                values = [r[protocol][group][name] for r in runs]
                if any(v is None for v in values):
                    out[protocol][group][name] = {"mean": None, "std": None}
                    continue
                values = np.array(values, dtype=np.float64)
                std = float(values.std(ddof=1)) if len(values) > 1 else 0.0
                out[protocol][group][name] = {"mean": float(values.mean()), "std": std}
    return out


def format_table(summary: dict, ks: Sequence[int], seeds: int, floor: dict | None = None) -> str:
    """A markdown table of aggregated metrics, the protocol named on every row; with ``floor``
    (the popularity baseline's metrics, one run) a popularity row follows each model row."""
    names = metric_names(ks)
    header = "| protocol | group | model | users | " + " | ".join(names) + " |"
    lines = [header, "|" + "---|" * (4 + len(names))]
    for protocol, groups in summary.items():
        for group, metrics in groups.items():
            cells = [_cell(metrics[n], seeds) for n in names]
            lines.append(f"| {protocol} | {group} | model | {metrics['users']} | " + " | ".join(cells) + " |")
            if floor is not None:
                base = floor[protocol][group]
                cells = [_cell({"mean": base[n], "std": 0.0}, 1) for n in names]
                lines.append(f"| {protocol} | {group} | popularity | {base['users']} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def _cell(value: dict, seeds: int) -> str:
    if value["mean"] is None:
        return "–"
    if seeds > 1:
        return f"{value['mean']:.4f} ± {value['std']:.4f}"
    return f"{value['mean']:.4f}"
