"""The ``gnn`` stage: contrastive pretraining of the relation-aware GAT -> graph item embeddings.

Reads the graph stage's ``edges.npz`` (DGL-free) and, for LLM item inputs,
the embed stage's ``item_llm.npy``; writes what :mod:`esrgraph.gnn.pretrain`
describes. Checkpoints live beside the stage folder in
``<run>/gnn.checkpoints/`` so that an interrupted run keeps them; a resumed
run continues from the last one, and a finished stage removes them.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np

from ..config_schema import key_dict
from ..data.store import load_dataset
from ..errors import InputError
from ..gnn.encoder import ITEM
from ..gnn.pretrain import pretrain_into
from ..graph.edges import HeteroEdges
from ..graph.io import load_edges, load_sidecar, node_values
from ..text.store import ITEM_LLM, load_array
from ..training.checkpoint import CheckpointStore, checkpoint_folder
from . import Stage, StageRun

log = logging.getLogger(__name__)


def reads(cfg) -> tuple[str, ...]:
    return ("dataset", "embed", "graph") if cfg.gnn.item_input == "llm" else ("dataset", "graph")


def section(cfg) -> dict:
    """What the output depends on besides its inputs: the gnn section, the seed, the text model."""
    out = {**key_dict(cfg.gnn), "seed": cfg.run.seed}
    if cfg.gnn.attribute_input == "text":
        embed = cfg.embed
        out["attribute_text_model"] = {
            "model": embed.model,
            "max_tokens": embed.max_tokens,
            "precision": embed.precision,
        }
    return out


def checkpoint_store(ctx: StageRun) -> CheckpointStore:
    return CheckpointStore(checkpoint_folder(ctx.run.stage_dir("gnn")), ctx.key)


def produce(ctx: StageRun, out: Path) -> dict:
    cfg = ctx.cfg.gnn
    ds = load_dataset(ctx.inputs["dataset"])
    edges = load_edges(ctx.inputs["graph"], ds.num_items)
    features = input_features(ctx, edges)
    store = checkpoint_store(ctx)
    return pretrain_into(out, cfg, ctx.cfg.run.seed, edges, features, store, ctx.resume, ctx.callbacks)


def input_features(ctx: StageRun, edges: HeteroEdges) -> dict[str, np.ndarray]:
    """Fixed input features by node type: LLM item embeddings and/or attribute value encodings."""
    cfg = ctx.cfg.gnn
    features = {}
    if cfg.item_input == "llm":
        item_llm = load_array(ctx.inputs["embed"], ITEM_LLM)
        if item_llm.shape[0] != edges.num_nodes[ITEM]:
            raise InputError(
                ctx.inputs["embed"] / ITEM_LLM,
                f"{item_llm.shape[0]} rows, but the graph has "
                f"{edges.num_nodes[ITEM]} item nodes; run esr embed --force",
            )
        features[ITEM] = item_llm
    if cfg.attribute_input == "text":
        features.update(attribute_text_features(ctx, edges))
    return features


def attribute_text_features(ctx: StageRun, edges: HeteroEdges) -> dict[str, np.ndarray]:
    """The sentence model's encoding of each attribute node's own value, e.g. ``"brand: l'oreal paris"``."""
    from ..text.cache import EmbeddingCache, encode_cached
    from ..text.encoder import load_encoder

    embed, graph_dir = ctx.cfg.embed, ctx.inputs["graph"]
    meta = load_sidecar(graph_dir)
    encoder = load_encoder(embed, ctx.run.cache_dir)
    cache = EmbeddingCache(ctx.run.cache_dir / "text", encoder.cache_key(), encoder.dim) if embed.cache else None
    out = {}
    for node_type, count in edges.num_nodes.items():
        if node_type == ITEM:
            continue
        texts = [f"{node_type}: {value}" for value in node_values(meta, node_type)] if count else []
        if len(texts) != count:
            raise InputError(
                graph_dir / "graph.json",
                f"{len(texts)} {node_type} values for {count} {node_type} nodes; run esr build-graph --force",
            )
        out[node_type] = encode_cached(encoder, texts, embed.batch_size, cache, f"{node_type} values")
    return out


STAGE = Stage("gnn", reads=reads, section=section, produce=produce, checkpoints=True)
