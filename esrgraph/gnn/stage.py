"""The ``gnn`` stage: contrastive pretraining of the relation-aware GAT -> graph item embeddings.

Reads the graph stage's ``edges.npz`` (DGL-free) and, for LLM item inputs,
the embed stage's ``item_llm.npy``. Artifacts in ``<run>/gnn/``:

- ``item_graph.npy``: float32 ``[N + 1, gnn.hidden]``, the trained encoder's
  item embeddings on the un-augmented graph in eval mode, row ``i`` =
  canonical item ``i``, row 0 (padding) zeros;
- ``probe.json``: the neighbour-agreement probe before and after training;
- ``history.json``: loss and seconds per epoch, best epoch, early stop.

Checkpoints live beside the stage folder in ``<run>/gnn.checkpoints/`` so that
an interrupted run keeps them; ``pretrain(run, resume=True)`` continues from
the last one, and a finished stage removes them.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Callable

import numpy as np
import torch

from ..artifacts import read_json, save_array, sha256_json, write_json
from ..config_schema import key_dict
from ..data import stage as data_stage
from ..errors import InputError
from ..graph import stage as graph_stage
from ..graph.edges import HeteroEdges
from ..runs import Run
from ..text import stage as text_stage
from .backends import resolve_backend, resolve_device
from .checkpoint import CheckpointStore, seed_everything
from .config import GnnConfig
from .encoder import ITEM, item_embeddings
from .model import ContrastiveModel, build_encoder
from .probe import chance_agreement, item_labels, probe
from .tensors import GraphTensors
from .train import TrainResult, train

log = logging.getLogger(__name__)

STAGE = "gnn"
EMBEDDINGS = "item_graph.npy"
PROBE = "probe.json"
HISTORY = "history.json"
CHECKPOINTS = "gnn.checkpoints"


def pretrain(run: Run, resume: bool = False, on_epoch_end: Callable[[int, float], None] | None = None) -> Path:
    """Run the gnn stage (and the stages it reads); returns the stage folder.

    ``resume`` continues an interrupted run from its last checkpoint;
    ``on_epoch_end(epoch, loss)`` is called after each epoch's checkpoint.
    """
    cfg = run.cfg.gnn
    ds = data_stage.prepare(run)
    upstream = {}
    embed_dir = None
    if cfg.item_input == "llm":
        embed_dir = text_stage.embed(run)
        upstream[text_stage.STAGE] = run.stage_key(text_stage.STAGE)
    graph_dir = graph_stage.build_graph(run)
    upstream[graph_stage.STAGE] = run.stage_key(graph_stage.STAGE)
    section = stage_section(run)
    store = CheckpointStore(run.dir / CHECKPOINTS, sha256_json({"config": section, "upstream": upstream}))

    def produce(out: Path) -> dict:
        edges = graph_stage.load_edges(graph_dir, ds.num_items)
        features = input_features(run, edges, graph_dir, embed_dir)
        if not resume and store.latest_epoch() is not None:
            log.warning("gnn: a checkpoint after epoch %d exists in %s; starting over (pass --resume to continue it)",
                        store.latest_epoch(), store.folder)
        return pretrain_into(out, cfg, run.cfg.run.seed, edges, features, store, resume, on_epoch_end)

    out = run.run_stage(STAGE, section, upstream, produce)
    store.clear()
    return out


def stage_section(run: Run) -> dict:
    """What the stage's output depends on besides its inputs: the gnn section, the seed, the text model."""
    section = {**key_dict(run.cfg.gnn), "seed": run.cfg.run.seed}
    if run.cfg.gnn.attribute_input == "text":
        embed = run.cfg.embed
        section["attribute_text_model"] = {"model": embed.model, "max_tokens": embed.max_tokens, "precision": embed.precision}
    return section


def pretrain_into(out: Path, cfg: GnnConfig, seed: int, edges: HeteroEdges, features: dict[str, np.ndarray],
                  store: CheckpointStore | None = None, resume: bool = False,
                  on_epoch_end: Callable[[int, float], None] | None = None) -> dict:
    """Train on ``edges`` and write the stage's artifacts into ``out``; returns manifest entries."""
    device = resolve_device(cfg.device)
    backend = resolve_backend(cfg.backend, device)
    log.info("gnn: %s message passing on %s; %d edges, %s", backend, device, edges.num_edges(), edges.num_nodes)
    graph = GraphTensors.from_edges(edges, device)
    seed_everything(seed)
    tensors = {t: torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32)) for t, x in features.items()}
    model = ContrastiveModel(build_encoder(cfg, graph, backend, tensors), cfg.projection).to(device)
    labels = item_labels(edges)
    untrained = item_embeddings(model.encoder, graph).cpu().numpy()
    result = train(model, graph, cfg, store, resume, on_epoch_end)
    model.load_state_dict(result.best_state)
    trained = item_embeddings(model.encoder, graph).cpu().numpy()
    rows = {}
    if ITEM in features:
        rows["input features (LLM item embeddings)"] = probe(features[ITEM], labels, cfg.probe_k)
    rows["untrained encoder"] = probe(untrained, labels, cfg.probe_k)
    rows["trained encoder"] = probe(trained, labels, cfg.probe_k)
    report = {"k": cfg.probe_k, "chance": {a: round(chance_agreement(l), 4) for a, l in labels.items()}, "rows": rows}
    save_array(out / EMBEDDINGS, trained.astype(np.float32))
    write_json(out / PROBE, report)
    write_json(out / HISTORY, history(result))
    return {"backend": backend, "device": str(device), **summary(result), "probe": report,
            "parameters": sum(p.numel() for p in model.parameters())}


def input_features(run: Run, edges: HeteroEdges, graph_dir: Path, embed_dir: Path | None) -> dict[str, np.ndarray]:
    """Fixed input features by node type: LLM item embeddings and/or attribute value encodings."""
    cfg = run.cfg.gnn
    features = {}
    if cfg.item_input == "llm":
        path = embed_dir / "item_llm.npy"
        item_llm = np.load(path)
        if item_llm.shape[0] != edges.num_nodes[ITEM]:
            raise InputError(path, f"{item_llm.shape[0]} rows, but the graph has {edges.num_nodes[ITEM]} item nodes; "
                                   "run esr embed --force")
        features[ITEM] = item_llm
    if cfg.attribute_input == "text":
        features.update(attribute_text_features(run, graph_dir, edges))
    return features


def attribute_text_features(run: Run, graph_dir: Path, edges: HeteroEdges) -> dict[str, np.ndarray]:
    """The sentence model's encoding of each attribute node's own value, e.g. ``"brand: l'oreal paris"``."""
    from ..graph.io import node_values
    from ..text.cache import EmbeddingCache, encode_cached
    from ..text.encoder import TextEncoder

    embed = run.cfg.embed
    meta = graph_stage.load_sidecar(graph_dir)
    encoder = TextEncoder.load(embed.model, embed.device, embed.precision, embed.max_tokens)
    cache = EmbeddingCache(run.cache_dir / "text", encoder.cache_key(), encoder.dim) if embed.cache else None
    out = {}
    for node_type, count in edges.num_nodes.items():
        if node_type == ITEM:
            continue
        texts = [f"{node_type}: {value}" for value in node_values(meta, node_type)] if count else []
        if len(texts) != count:
            raise InputError(graph_dir / "graph.json", f"{len(texts)} {node_type} values for {count} {node_type} nodes; "
                                                       "run esr build-graph --force")
        out[node_type] = encode_cached(encoder, texts, embed.batch_size, cache, f"{node_type} values")
    return out


def summary(result: TrainResult) -> dict:
    p = result.progress
    seconds = [h["seconds"] for h in p.history if h["epoch"] > result.resumed_from]
    return {"epochs": p.epoch, "best_epoch": p.best_epoch, "best_loss": round(p.best_loss, 6),
            "stopped_early": p.stopped_early, "resumed_from": result.resumed_from,
            "seconds_per_epoch": round(float(np.median(seconds)), 4) if seconds else None}


def history(result: TrainResult) -> dict:
    return {**summary(result), "history": result.progress.history}


def load_item_graph(stage_dir: Path) -> np.ndarray:
    """The stage's item embeddings ``[N + 1, d]`` (row 0 = padding)."""
    path = Path(stage_dir) / EMBEDDINGS
    try:
        return np.load(path)
    except (OSError, ValueError) as exc:
        raise InputError(path, f"cannot read the graph item embeddings ({exc}); run esr pretrain-gnn") from None


def load_probe(stage_dir: Path) -> dict:
    return read_json(Path(stage_dir) / PROBE)
