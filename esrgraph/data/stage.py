"""The ``dataset`` stage: read, join and split the configured data into the run directory."""

from __future__ import annotations

from ..runs import Run
from .dataset import Dataset, build_dataset, load_dataset, save_dataset

STAGE = "dataset"


def prepare(run: Run) -> Dataset:
    """Build the canonical dataset unless the run directory already holds it."""
    built: list[Dataset] = []

    def produce(out):
        ds = build_dataset(run.cfg.dataset)
        save_dataset(ds, out)
        built.append(ds)
        return {"stats": ds.stats}

    out = run.run_stage(STAGE, run.cfg.dataset, {}, produce, inputs=run.input_hashes())
    return built[0] if built else load_dataset(out)
