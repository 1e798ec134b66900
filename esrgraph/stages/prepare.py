"""The ``dataset`` stage: read, join and split the configured data into the run directory."""

from __future__ import annotations

from pathlib import Path

from ..data.dataset import build_dataset
from ..data.store import save_dataset
from . import Stage, StageRun


def produce(ctx: StageRun, out: Path) -> dict:
    ds = build_dataset(ctx.cfg.dataset)
    save_dataset(ds, out)
    return {"stats": ds.stats}


STAGE = Stage("dataset", reads=lambda cfg: (), section=lambda cfg: cfg.dataset, produce=produce, input_files=True)
