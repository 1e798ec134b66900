"""Saving and loading the graph: ``graph.bin``, its JSON sidecar ``graph.json`` and ``edges.npz``.

``graph.bin`` holds one DGL heterograph (``dgl.save_graphs``); every node type
has ``ndata["id"]``, the node's own id (for items: the canonical item id).
``edges.npz`` holds the same graph as plain arrays (:class:`HeteroEdges`) for
machines without DGL; :func:`load_edges` and :func:`load_sidecar` never import DGL.

Sidecar format (``graph.json``)::

    {
      "format": 1,
      "num_items": N,                  # canonical items; item nodes are 0..N, 0 = padding
      "num_nodes": {"item": N + 1, "brand": B, "category": C, "price": P},
      "relations": [["item", "has_brand", "brand"], ...],   # as in the graph
      "vocab": {                       # node id = list position, for each attribute type
        "brand":    {"values": ["l'oreal paris", ...], "counts": [291, ...]},
        "category": {"values": ["makeup", "makeup > nails", ...], "counts": [...],
                     "parents": [-1, 0, ...]},               # only with category_hierarchy
        "price":    {"values": ["0.01 to 5.99", ...], "counts": [...],
                     "buckets": [0, 1, ...], "bounds": [[0.01, 5.99], ...]}
      },
      "price_edges": [0.01, 5.99, ...],  # ascending bucket edges of the parsed prices
      "stats": {...},                  # esrgraph.graph.stats.graph_stats
      "config": {...},                 # the resolved graph config, plus categories_are_path
      "inputs": {...}, "input_hash": "<sha256 of inputs>"
    }

``values`` are the normalised attribute values (the display text of each
attribute node; category values are ``" > "``-joined path prefixes, or single
names when categories are not paths); ``counts`` are the items carrying each
value, which ``min_count`` was compared against.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from ..artifacts import read_json, sha256_json, write_json
from ..errors import InputError
from .build import BuiltGraph, to_dgl
from .edges import HeteroEdges

GRAPH_FILE = "graph.bin"
SIDECAR_FILE = "graph.json"
EDGES_FILE = "edges.npz"
FORMAT = 1


def save_graph(out_dir: Path, built: BuiltGraph, config: dict[str, Any], inputs: dict[str, str]) -> None:
    """Write ``graph.bin``, ``edges.npz`` and ``graph.json`` into ``out_dir``."""
    import dgl

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    tmp = out_dir / f".{GRAPH_FILE}.tmp"
    dgl.save_graphs(str(tmp), [to_dgl(built.edges)])
    os.replace(tmp, out_dir / GRAPH_FILE)
    built.edges.save(out_dir / EDGES_FILE)
    write_json(out_dir / SIDECAR_FILE, sidecar(built, config, inputs))


def sidecar(built: BuiltGraph, config: dict[str, Any], inputs: dict[str, str]) -> dict[str, Any]:
    return {
        "format": FORMAT,
        "num_items": built.num_items,
        "num_nodes": dict(built.edges.num_nodes),
        "relations": [list(r) for r in built.edges.relations()],
        "vocab": {t: v.to_json() for t, v in built.vocab.items()},
        "price_edges": [float(e) for e in built.price_edges],
        "stats": built.stats,
        "config": config,
        "inputs": inputs,
        "input_hash": sha256_json(inputs),
    }


def load_sidecar(stage_dir: Path, num_items: int | None = None) -> dict[str, Any]:
    """The sidecar of the graph in ``stage_dir``; checks the item count when ``num_items`` is given."""
    path = Path(stage_dir) / SIDECAR_FILE
    try:
        meta = read_json(path)
    except (OSError, ValueError) as exc:
        raise InputError(path, f"cannot read the graph sidecar ({exc}); run esr build-graph") from None
    if meta.get("format") != FORMAT:
        raise InputError(
            path, f"graph sidecar format {meta.get('format')!r}, expected {FORMAT}; run esr build-graph --force"
        )
    check_items(path, meta["num_items"], num_items)
    return meta


def load_edges(stage_dir: Path, num_items: int | None = None) -> HeteroEdges:
    """The graph as DGL-free edge arrays; checks the item count when ``num_items`` is given."""
    path = Path(stage_dir) / EDGES_FILE
    if not path.is_file():
        raise InputError(path, "graph edges not found; run esr build-graph")
    edges = HeteroEdges.load(path)
    if "item" not in edges.num_nodes:
        raise InputError(path, "not a graph edges file (no item nodes)")
    check_items(path, edges.num_nodes["item"] - 1, num_items)
    return edges


def load_graph(stage_dir: Path, num_items: int | None = None) -> tuple[Any, dict[str, Any]]:
    """``(DGL heterograph, sidecar)``; refuses a graph built for another item count."""
    import dgl

    meta = load_sidecar(stage_dir, num_items)
    path = Path(stage_dir) / GRAPH_FILE
    try:
        graphs, _ = dgl.load_graphs(str(path))
    except Exception as exc:  # DGL raises its own error types for a missing or damaged file
        raise InputError(path, f"cannot read the graph ({exc}); run esr build-graph --force") from None
    graph = graphs[0]
    check_items(path, graph.num_nodes("item") - 1, meta["num_items"] if num_items is None else num_items)
    return graph, meta


def check_items(path: Path, graph_items: int, dataset_items: int | None) -> None:
    if dataset_items is not None and graph_items != dataset_items:
        raise InputError(
            path,
            f"the graph has {graph_items:,} items but the dataset has {dataset_items:,}; "
            "it was built from other data: run esr build-graph --force for this dataset",
        )


def node_values(meta: dict[str, Any], node_type: str) -> list[str]:
    """Display text of each node of an attribute type (node id = position)."""
    if node_type not in meta["vocab"]:
        raise KeyError(f"no vocabulary for node type {node_type!r}; attribute types: {sorted(meta['vocab'])}")
    return list(meta["vocab"][node_type]["values"])
