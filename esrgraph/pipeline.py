"""``esr pipeline``: every stage in one run directory, skipping what is up to date.

embed → build-graph → pretrain-gnn → train-seq → evaluate. Each stage is
skipped when its manifest key matches (same settings, same inputs), and an
interrupted pretraining or training continues from its last checkpoint.
"""

from __future__ import annotations

import logging
from pathlib import Path

from .data import stage as data_stage
from .eval import stage as eval_stage
from .gnn import stage as gnn_stage
from .graph import stage as graph_stage
from .runs import Run
from .text import stage as text_stage

log = logging.getLogger(__name__)


def run_pipeline(run: Run) -> tuple[Path, dict]:
    """Run every stage; returns the evaluation folder and its metrics."""
    data_stage.prepare(run)
    text_stage.embed(run)
    graph_stage.build_graph(run)
    gnn_stage.pretrain(run, resume=True)
    return eval_stage.evaluate(run, resume="auto")
