"""The ``graph`` stage: the prepared dataset's item metadata -> the item–attribute heterograph.

Artifacts in ``<run>/graph/``: ``graph.bin`` (DGL), ``graph.json`` (sidecar:
vocabularies, price bucket edges, statistics, config, input hashes) and
``edges.npz`` (the same graph without DGL); see :mod:`esrgraph.graph.io`.
"""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path

from ..data import stage as data_stage
from ..data.files import display_name
from ..runs import Run
from .build import build_graph_data
from .io import load_edges, load_graph, load_sidecar, save_graph

STAGE = "graph"
__all__ = ["STAGE", "build_graph", "load_edges", "load_graph", "load_sidecar"]


def build_graph(run: Run) -> Path:
    """Run the graph stage (and the dataset stage before it); returns the stage folder."""
    ds = data_stage.prepare(run)
    cfg = run.cfg.graph
    meta_cfg = run.cfg.dataset.metadata
    source = display_name(meta_cfg.path) if meta_cfg.path else "dataset.metadata.path (null: no item metadata)"
    dataset_key = run.stage_key(data_stage.STAGE)

    def produce(out: Path) -> dict:
        built = build_graph_data(ds.item_meta, cfg, meta_cfg.categories_are_path, source)
        config = {**asdict(cfg), "categories_are_path": meta_cfg.categories_are_path}
        inputs = {f"stage:{data_stage.STAGE}": dataset_key, **run.input_hashes()}
        save_graph(out, built, config, inputs)
        return {"stats": built.stats}

    return run.run_stage(STAGE, cfg, {data_stage.STAGE: dataset_key}, produce)
