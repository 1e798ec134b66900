"""The ``graph`` stage: the prepared dataset's item metadata -> the item–attribute heterograph.

Artifacts: ``graph.bin`` (DGL), ``graph.json`` (sidecar: vocabularies, price
bucket edges, statistics, config, input hashes) and ``edges.npz`` (the same
graph without DGL); see :mod:`esrgraph.graph.io`.
"""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path

from ..data.dataset import categories_are_path
from ..data.files import display_name
from ..data.store import load_dataset
from ..graph.build import build_graph_data
from ..graph.io import save_graph
from . import Stage, StageRun


def produce(ctx: StageRun, out: Path) -> dict:
    ds = load_dataset(ctx.inputs["dataset"])
    cfg, meta_cfg = ctx.cfg.graph, ctx.cfg.dataset.metadata
    source = display_name(meta_cfg.path) if meta_cfg.path else "dataset.metadata.path (null: no item metadata)"
    as_path = categories_are_path(ds, meta_cfg.categories_are_path)  # the reading the dataset stage resolved
    built = build_graph_data(ds.item_meta, cfg, as_path, source)
    config = {**asdict(cfg), "categories_are_path": as_path}
    inputs = {"stage:dataset": ctx.run.stage_key("dataset"), **ctx.run.input_hashes}
    save_graph(out, built, config, inputs)
    return {"stats": built.stats}


STAGE = Stage("graph", reads=lambda cfg: ("dataset",), section=lambda cfg: cfg.graph, produce=produce)
