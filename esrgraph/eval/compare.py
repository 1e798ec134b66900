"""Test metrics of finished runs side by side: each user and item group's change over a baseline.

A side is one or more ``metrics.json`` files (runs trained apart, one seed each or several), pooled
by seed, so three one-seed runs read as one three-seed model. Both sides must rank the same users
of the same split of the same dataset; where they share seeds, each seed's change is also taken
against the baseline's same seed.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..artifacts import read_json
from ..errors import InputError
from .metrics import GROUPS, VALID_METRIC, aggregate

METRICS = "metrics.json"


def metrics_file(path: Path) -> Path:
    """The metrics a path names: the file itself, an evaluation folder, or a run folder (its ``eval``)."""
    path = Path(path)
    for candidate in (path, path / METRICS, path / "eval" / METRICS):
        if candidate.is_file():
            return candidate
    raise InputError(path, f"holds no {METRICS}; give a run folder, its eval folder or the file (run esr evaluate)")


@dataclass
class Side:
    """The pooled test metrics of one side of a comparison."""

    files: list[Path]
    models: list[str]
    dataset: str
    split: str
    ranked: int | None  # users ranked; None in files from before eval.users (every user)
    per_seed: dict[str, dict]

    @property
    def summary(self) -> dict:
        return aggregate([self.per_seed[s] for s in self.per_seed])

    @property
    def label(self) -> str:
        return " + ".join(dict.fromkeys(self.models))


def pool(paths: list[Path]) -> Side:
    """One side from its metrics files; a seed found twice, or another dataset, split or user sample, stops."""
    side: Side | None = None
    origin: dict[str, Path] = {}
    for path in map(metrics_file, paths):
        metrics = _read(path)
        users = metrics.get("users", {}).get("ranked")
        if side is None:
            side = Side([], [], metrics["dataset"], metrics["split"], users, {})
        _check_same(path, side, metrics["dataset"], metrics["split"], users)
        for seed, values in metrics["per_seed"].items():
            if seed in side.per_seed:
                raise InputError(path, f"seed {seed} is also in {origin[seed]}; each seed may be given once a side")
            origin[seed] = path
            side.per_seed[seed] = values
        side.files.append(path)
        side.models.append(metrics.get("model", "?"))
    assert side is not None, "a side needs at least one path"
    return side


def _read(path: Path) -> dict:
    try:
        metrics = read_json(path)
        if not isinstance(metrics, dict):
            raise ValueError("not a JSON object")
        for key in ("dataset", "split", "per_seed"):
            if key not in metrics:
                raise ValueError(f"no {key!r} key")
    except (OSError, ValueError) as exc:
        raise InputError(path, f"is not the metrics esr evaluate writes ({exc})") from None
    return metrics


def _check_same(path: Path, side: Side, dataset: str, split: str, ranked: int | None) -> None:
    for what, mine, theirs in (("dataset", dataset, side.dataset), ("split", split, side.split)):
        if mine != theirs:
            raise InputError(path, f"{what} {mine!r}, where {side.files[0]} has {theirs!r}; compare like with like")
    if ranked != side.ranked and None not in (ranked, side.ranked):  # files from before eval.users rank everyone
        raise InputError(
            path, f"ranks {ranked} users, where {side.files[0]} ranks {side.ranked}: set the same eval.users"
        )


def changes(model: dict, baseline: dict, metric: str = VALID_METRIC) -> dict:
    """Relative ``metric`` change of ``model`` over ``baseline`` (each {"summary", "per_seed"}) per protocol
    and group: the change of the means, and the mean and std of the per-seed changes (each seed against
    the baseline's same seed), with whether the means differ by less than the larger seed std."""
    out: dict = {}
    for protocol in model["summary"]:
        if protocol not in baseline["summary"]:
            continue
        out[protocol] = {}
        for group in GROUPS:
            mine, theirs = model["summary"][protocol][group][metric], baseline["summary"][protocol][group][metric]
            paired = [
                relative_change(values[protocol][group][metric], baseline["per_seed"][seed][protocol][group][metric])
                for seed, values in model["per_seed"].items()
                if seed in baseline["per_seed"]
            ]
            paired = [p for p in paired if p is not None]
            spread = max(mine["std"] or 0.0, theirs["std"] or 0.0)
            inside = None if mine["mean"] is None or theirs["mean"] is None else abs(mine["mean"] - theirs["mean"])
            out[protocol][group] = {
                "change": relative_change(mine["mean"], theirs["mean"]),
                "seed_mean": float(np.mean(paired)) if paired else None,
                "seed_std": float(np.std(paired, ddof=1)) if len(paired) > 1 else 0.0,
                "seeds_paired": len(paired),
                "inside_spread": None if inside is None or spread == 0.0 else bool(inside <= spread),
            }
    return out


def relative_change(value: float | None, base: float | None) -> float | None:
    """(value - base) / base; None where either is missing or the base is 0."""
    return (value - base) / base if value is not None and base else None


def change_cell(change: dict) -> str:
    """The paired per-seed change (mean ± std) where seeds pair up, else the change of the means."""
    if change["seed_mean"] is None:
        return "–" if change["change"] is None else f"{change['change']:+.1%}"
    return f"{change['seed_mean']:+.1%} ± {change['seed_std']:.1%}"


def comparison(model: Side, baseline: Side, metric: str = VALID_METRIC) -> dict:
    """Both sides' pooled metrics and the model's change over the baseline, ready to print or save."""
    _check_same(baseline.files[0], model, baseline.dataset, baseline.split, baseline.ranked)
    sides = {"model": model, "baseline": baseline}
    summaries = {name: side.summary for name, side in sides.items()}
    for name, side in sides.items():
        if any(metric not in groups["overall"] for groups in summaries[name].values()):
            raise InputError(side.files[0], f"has no metric {metric!r} (set eval.ks to rank it)")
    return {
        "dataset": model.dataset,
        "split": model.split,
        "metric": metric,
        "sides": {
            name: {
                "label": side.label,
                "files": [str(f) for f in side.files],
                "seeds": sorted(side.per_seed, key=int),
                "summary": {p: {g: summaries[name][p][g][metric] for g in GROUPS} for p in summaries[name]},
            }
            for name, side in sides.items()
        },
        "changes": changes(
            {"summary": summaries["model"], "per_seed": model.per_seed},
            {"summary": summaries["baseline"], "per_seed": baseline.per_seed},
            metric,
        ),
    }


def comparison_table(result: dict) -> str:
    """A markdown table per protocol: both sides' mean ± std by group, then the change of the means and,
    where two or more seeds pair up, the per-seed change; * marks a change inside the larger seed std."""
    sides, metric = result["sides"], result["metric"]
    lines = [f"{result['dataset']} · {result['split']} split · {metric}, mean ± std over seeds"]
    for name, side in sides.items():
        lines.append(f"{name}: {side['label']}, seeds {', '.join(side['seeds'])} ({', '.join(side['files'])})")
    header = "| protocol | row | " + " | ".join(g.replace("_", " ") for g in GROUPS) + " |"
    lines += ["", header, "|" + "---|" * (2 + len(GROUPS))]
    paired = any(c["seeds_paired"] > 1 for p in result["changes"].values() for c in p.values())
    for protocol, change in result["changes"].items():
        for name, side in sides.items():
            cells = [_value_cell(side["summary"][protocol][g], len(side["seeds"])) for g in GROUPS]
            lines.append(f"| {protocol} | {name} | " + " | ".join(cells) + " |")
        means = [_mean_change(change[g]) for g in GROUPS]
        lines.append(f"| {protocol} | change | " + " | ".join(means) + " |")
        if paired:
            lines.append(f"| {protocol} | per seed | " + " | ".join(change_cell(change[g]) for g in GROUPS) + " |")
    lines.append("")
    lines.append("change: of the means" + ("; per seed: each seed against the baseline's same seed" if paired else ""))
    lines.append("* the means differ by less than the larger of the two seed standard deviations")
    return "\n".join(lines)


def _value_cell(value: dict, seeds: int) -> str:
    if value["mean"] is None:
        return "–"
    return f"{value['mean']:.4f} ± {value['std']:.4f}" if seeds > 1 else f"{value['mean']:.4f}"


def _mean_change(change: dict) -> str:
    if change["change"] is None:
        return "–"
    return f"{change['change']:+.1%}" + ("*" if change["inside_spread"] else "")
