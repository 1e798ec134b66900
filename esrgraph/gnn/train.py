"""The pretraining loop: Adam, early stopping on a loss plateau, progress, per-epoch checkpoints.

One epoch is one optimiser step on the whole graph: both augmented views
through the encoder and the full contrastive loss over every item. After
each epoch the model, optimiser, best model so far, random states and the
early-stopping state are checkpointed (:mod:`esrgraph.training`), so a
resumed run continues exactly where the interrupted one stopped and ends
with identical weights.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import torch
from tqdm.auto import tqdm

from ..errors import EsrError
from ..training.checkpoint import CheckpointStore
from ..training.stopping import EarlyStopping
from .config import GnnConfig
from .model import ContrastiveModel
from .tensors import GraphTensors

log = logging.getLogger(__name__)

LOG_EVERY = 10  # epochs between progress lines in the log (the progress bar shows every epoch on a terminal)


@dataclass
class TrainResult:
    stopping: EarlyStopping
    best_state: dict[str, torch.Tensor]  # the model's state dict at the best epoch
    history: list[dict] = field(default_factory=list)  # {"epoch", "loss", "seconds"} per epoch
    resumed_from: int = 0


def stopping_rule(cfg: GnnConfig) -> EarlyStopping:
    return EarlyStopping(cfg.patience, "min", min_delta=cfg.min_delta)


def train(
    model: ContrastiveModel,
    graph: GraphTensors,
    cfg: GnnConfig,
    store: CheckpointStore | None = None,
    resume: bool = False,
    on_epoch_end: Callable[[int, float], None] | None = None,
    show_progress: bool | None = None,
) -> TrainResult:
    """Pretrain ``model`` on ``graph``; with ``resume``, continue from ``store``'s latest checkpoint.

    ``on_epoch_end(epoch, loss)`` runs after each epoch's checkpoint is written.
    """
    optimizer = torch.optim.Adam(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    result = TrainResult(stopping_rule(cfg), _copy_state(model))
    if resume and store is not None:
        restored = _restore(store, model, optimizer, cfg)
        if restored is not None:
            result = restored
            log.info(
                "gnn: resuming after epoch %d (best loss %.4f at epoch %d)",
                result.stopping.epoch,
                result.stopping.best,
                result.stopping.best_epoch,
            )
    model.train()
    stop = result.stopping
    disable = None if show_progress is None else not show_progress  # None: a bar on terminals only
    with tqdm(total=cfg.epochs, initial=stop.epoch, desc="pretrain-gnn", unit="epoch", disable=disable) as bar:
        while stop.epoch < cfg.epochs and not stop.stopped:
            loss, seconds = train_step(model, graph, cfg, optimizer)
            if stop.update(loss):
                result.best_state = _copy_state(model)
            result.history.append({"epoch": stop.epoch, "loss": loss, "seconds": round(seconds, 4)})
            if store is not None:
                store.save(
                    stop.epoch,
                    {"model": model.state_dict(), "optimizer": optimizer.state_dict(), "best_model": result.best_state},
                    {"stopping": stop.state_dict(), "history": result.history},
                )
            _report(bar, stop, cfg.epochs, loss, seconds)
            if on_epoch_end is not None:
                on_epoch_end(stop.epoch, loss)
    if stop.stopped:
        log.info(
            "gnn: loss plateau, stopped after epoch %d (best %.4f at epoch %d)", stop.epoch, stop.best, stop.best_epoch
        )
    return result


def _report(bar, stop: EarlyStopping, epochs: int, loss: float, seconds: float) -> None:
    bar.update(1)
    bar.set_postfix(loss=f"{loss:.4f}", best=f"{stop.best:.4f}")
    if stop.epoch % LOG_EVERY == 0 or stop.epoch == epochs or stop.stopped:
        log.info(
            "gnn: epoch %d/%d loss %.4f (best %.4f at epoch %d), %.3f s",
            stop.epoch,
            epochs,
            loss,
            stop.best,
            stop.best_epoch,
            seconds,
        )


def train_step(
    model: ContrastiveModel, graph: GraphTensors, cfg: GnnConfig, optimizer: torch.optim.Optimizer
) -> tuple[float, float]:
    """One optimiser step on the whole graph; returns (loss, seconds)."""
    start = time.perf_counter()
    optimizer.zero_grad(set_to_none=True)
    loss = model.loss(graph, cfg)
    if not torch.isfinite(loss):
        raise EsrError(f"gnn: the loss became {loss.item()}; lower gnn.lr or raise gnn.tau")
    loss.backward()
    optimizer.step()
    value = loss.item()  # synchronises, so the time below is the real step time on any device
    return value, time.perf_counter() - start


def _copy_state(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


def _restore(
    store: CheckpointStore, model: ContrastiveModel, optimizer: torch.optim.Optimizer, cfg: GnnConfig
) -> TrainResult | None:
    """The training state of the latest checkpoint, or None (logged) when there is none to use."""
    if not store.exists():
        log.info("gnn: no checkpoint to resume from; starting at epoch 1")
        return None
    try:
        states, saved = store.load()
    except EsrError as exc:  # another training's checkpoint, or a damaged one: the result is the same from scratch
        log.warning("gnn: cannot resume (%s); starting at epoch 1", exc)
        return None
    model.load_state_dict(states["model"])
    optimizer.load_state_dict(states["optimizer"])
    device = next(model.parameters()).device
    stop = stopping_rule(cfg)
    stop.load_state_dict(saved["stopping"])
    best_state = {k: v.to(device) for k, v in states["best_model"].items()}
    return TrainResult(stop, best_state, saved["history"], resumed_from=stop.epoch)
