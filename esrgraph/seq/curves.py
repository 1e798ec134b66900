"""Validation curves of trained (or training) recommenders, by user and item group, side by side.

Every epoch of ``esr train-seq`` records its validation NDCG@10 overall and for
tail/head users and items, for the weights kept that epoch, with the raw
weights' and their average's own scores beside them (``history-seed<S>.json``
in the finished stage, the checkpoint's progress while it trains). A model
change is judged on these curves, group by group, against a baseline run of
the same seed: :func:`curve_table` prints them, with each group's change over
the baseline at the same epoch.
"""

from __future__ import annotations

from pathlib import Path

from ..errors import EsrError
from ..eval.compare import relative_change
from ..eval.metrics import GROUPS, VALID_METRIC
from ..training.checkpoint import checkpoint_folder
from .store import histories, training_histories

STAGE = "seq"
COLUMNS = {"overall": f"valid_{VALID_METRIC}"} | {group: f"valid_{group}" for group in GROUPS[1:]}


def recommender_stages(run_dir: Path) -> list[Path]:
    """The recommender stage folders of a run directory, finished or still training: ``seq``, and one
    ``seq-<variant>`` per variant ``esr ablate`` trained there."""
    names = {path.name.partition(".")[0] for path in run_dir.glob(f"{STAGE}*") if path.is_dir()}
    stages = [run_dir / name for name in sorted(names) if name == STAGE or name.startswith(f"{STAGE}-")]
    stages = [stage for stage in stages if _started(stage)]
    if not stages:
        raise EsrError(f"{run_dir}: no recommender trained or training here (no {STAGE}/ folder)")
    return stages


def stage_folder(path: Path) -> Path:
    """A recommender stage folder named by its run directory (``runs/NAME``: its ``seq``) or by itself
    (``runs/NAME/seq-sasrec``, an ablation's variant)."""
    inside = path / STAGE
    return inside if _started(inside) else path


def _started(stage: Path) -> bool:
    """A stage that finished (its folder) or is training or was interrupted (its checkpoints)."""
    return stage.is_dir() or checkpoint_folder(stage).is_dir()


def stage_histories(stage: Path) -> dict[int, tuple[list[dict], bool]]:
    """seed -> (per-epoch history, finished) of one recommender stage: the finished seeds' histories,
    else the checkpoint of a seed still training (or interrupted)."""
    found = {seed: (history, False) for seed, history in training_histories(checkpoint_folder(stage)).items()}
    found |= {seed: (history, True) for seed, history in histories(stage).items()}
    if not found:
        raise EsrError(f"{stage}: no seed trained or training here (no history-seed*.json, no checkpoint)")
    return dict(sorted(found.items()))


def best_entry(history: list[dict]) -> dict | None:
    """The epoch whose kept weights validated highest (the one the stage keeps)."""
    scored = [entry for entry in history if COLUMNS["overall"] in entry]
    return max(scored, key=lambda entry: entry[COLUMNS["overall"]]) if scored else None


def curve_table(history: list[dict], baseline: list[dict] | None = None, every: int = 1) -> str:
    """A markdown table of validation NDCG@10 per epoch (every ``every``-th, and the best): the kept
    weights' score per group, the raw weights' and the average's; with a ``baseline`` history, each
    group's change over the baseline's kept weights at the same epoch."""
    other = {entry["epoch"]: entry for entry in baseline or []}
    best = best_entry(history)
    lines = [
        "| epoch | kept | " + " | ".join(group.replace("_", " ") for group in GROUPS) + " | raw | average |",
        "|---:|---|" + "---:|" * (len(GROUPS) + 2),
    ]
    for entry in history:
        if entry["epoch"] % every and entry is not history[-1] and entry is not best:
            continue
        cells = [_cell(entry, key, other.get(entry["epoch"])) for key in COLUMNS.values()]
        raw, average = (_value(entry.get(f"valid_{name}")) for name in ("raw", "average"))
        mark = f"**{entry['epoch']}**" if entry is best else str(entry["epoch"])
        lines.append(f"| {mark} | {entry.get('weights', '')} | " + " | ".join(cells) + f" | {raw} | {average} |")
    return "\n".join(lines)


def _cell(entry: dict, key: str, against: dict | None) -> str:
    value = entry.get(key)
    text = _value(value)
    change = relative_change(value, against.get(key)) if against else None
    return text if change is None else f"{text} ({change:+.0%})"


def _value(value: float | None) -> str:
    return "–" if value is None else f"{value:.4f}"


def summary(history: list[dict], finished: bool) -> str:
    """One line: epochs run, the best epoch and its kept weights' scores by group."""
    best = best_entry(history)
    state = "finished" if finished else "training or interrupted"
    if best is None:
        return f"{len(history)} epochs ({state}), none validated"
    groups = ", ".join(f"{name} {_value(best.get(key))}" for name, key in COLUMNS.items())
    return (
        f"{len(history)} epochs ({state}); best epoch {best['epoch']} ({best.get('weights', 'raw')} weights): {groups}"
    )
