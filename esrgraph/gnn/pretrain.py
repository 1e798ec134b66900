"""Pretraining graph item embeddings end to end, and reading the results back.

:func:`pretrain_into` trains the contrastive encoder on an edge list and
writes the artifacts a run keeps:

- ``item_graph.npy``: float32 ``[N + 1, gnn.hidden]``, the trained encoder's
  item embeddings on the un-augmented graph in eval mode, row ``i`` =
  canonical item ``i``, row 0 (padding) zeros;
- ``probe.json``: the neighbour-agreement probe before and after training;
- ``history.json``: loss and seconds per epoch, best epoch, early stop.

Nothing here imports DGL: message passing goes through the backend chosen
by :func:`~.backends.resolve_backend`.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import torch

from ..artifacts import save_array, write_json
from ..graph.edges import HeteroEdges
from ..training.checkpoint import CheckpointStore
from ..training.device import resolve_device
from ..training.loop import EpochCallback, TrainResult
from ..training.seeding import seed_everything
from .backends import resolve_backend
from .blocks import layer_fanouts
from .config import GnnConfig
from .encoder import ITEM, item_embeddings
from .model import ContrastiveModel, build_encoder
from .probe import chance_agreement, item_labels, probe
from .store import EMBEDDINGS, HISTORY, PROBE
from .tensors import GraphTensors
from .train import train

log = logging.getLogger(__name__)


def pretrain_into(
    out: Path,
    cfg: GnnConfig,
    seed: int,
    edges: HeteroEdges,
    features: dict[str, np.ndarray],
    store: CheckpointStore | None = None,
    resume: bool | str = False,
    callbacks: tuple[EpochCallback, ...] = (),
) -> dict:
    """Train on ``edges`` and write the artifacts into ``out``; returns manifest entries."""
    device = resolve_device(cfg.device)
    backend = resolve_backend(cfg.backend, device)
    minibatch = cfg.uses_minibatch(edges.num_nodes[ITEM] - 1)
    log.info("gnn: %s message passing on %s; %d edges, %s", backend, device, edges.num_edges(), edges.num_nodes)
    if minibatch:
        log.info(
            "gnn: mini-batches of %d seed items, fan-outs %s (input layer first; -1: all); "
            "gnn.epochs and gnn.patience count steps",
            cfg.seed_batch_size,
            layer_fanouts(cfg.fanouts, cfg.layers),
        )
    graph = GraphTensors.from_edges(edges, device)
    seed_everything(seed)
    tensors = {t: torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32)) for t, x in features.items()}
    model = ContrastiveModel(build_encoder(cfg, graph, backend, tensors), cfg.projection).to(device)
    labels = item_labels(edges)
    untrained = item_embeddings(model.encoder, graph).cpu().numpy()
    result = train(model, graph, cfg, store, resume, callbacks, minibatch, seed)
    trained = item_embeddings(model.encoder, graph).cpu().numpy()
    rows = {}
    if ITEM in features:
        rows["input features (LLM item embeddings)"] = probe(features[ITEM], labels, cfg.probe_k)
    rows["untrained encoder"] = probe(untrained, labels, cfg.probe_k)
    rows["trained encoder"] = probe(trained, labels, cfg.probe_k)
    report = {
        "k": cfg.probe_k,
        "chance": {a: round(chance_agreement(values), 4) for a, values in labels.items()},
        "rows": rows,
    }
    save_array(out / EMBEDDINGS, trained.astype(np.float32))
    write_json(out / PROBE, report)
    write_json(out / HISTORY, history(result))
    return {
        "backend": backend,
        "device": str(device),
        "minibatch": minibatch,
        **summary(result),
        "probe": report,
        "parameters": sum(p.numel() for p in model.parameters()),
    }


def summary(result: TrainResult) -> dict:
    stop = result.stoppings["raw"]
    seconds = [h["seconds"] for h in result.history if h["epoch"] > result.resumed_from]
    return {
        "epochs": stop.epoch,
        "best_epoch": stop.best_epoch,
        "best_loss": round(stop.best, 6),
        "stopped_early": stop.stopped,
        "resumed_from": result.resumed_from,
        "seconds_per_epoch": round(float(np.median(seconds)), 4) if seconds else None,
    }


def history(result: TrainResult) -> dict:
    return {**summary(result), "history": result.history}
