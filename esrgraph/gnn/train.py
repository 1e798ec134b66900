"""The pretraining loop: Adam, early stopping on a loss plateau, progress, per-epoch checkpoints.

One epoch is one optimiser step on the whole graph: both augmented views
through the encoder and the full contrastive loss over every item. After
each epoch the model, optimiser, best model so far, RNG states and the
early-stopping state are checkpointed, so a resumed run continues exactly
where the interrupted one stopped and ends with identical weights.
"""

from __future__ import annotations

import logging
import math
import time
from dataclasses import asdict, dataclass, field
from typing import Callable

import torch
from tqdm.auto import tqdm

from ..errors import EsrError
from .checkpoint import CheckpointStore
from .config import GnnConfig
from .model import ContrastiveModel
from .tensors import GraphTensors

log = logging.getLogger(__name__)

LOG_EVERY = 10  # epochs between progress lines in the log (the progress bar shows every epoch on a terminal)


@dataclass
class Progress:
    """Early-stopping state and history; JSON-serialisable (it goes into every checkpoint)."""

    epoch: int = 0
    best_loss: float = math.inf
    best_epoch: int = 0
    bad_epochs: int = 0
    stopped_early: bool = False
    history: list[dict] = field(default_factory=list)  # {"epoch", "loss", "seconds"} per epoch

    def update(self, epoch: int, loss: float, seconds: float, min_delta: float, patience: int) -> bool:
        """Record an epoch; True when it improved the best loss by more than ``min_delta``."""
        self.epoch = epoch
        self.history.append({"epoch": epoch, "loss": loss, "seconds": round(seconds, 4)})
        improved = loss < self.best_loss - min_delta
        if improved:
            self.best_loss, self.best_epoch, self.bad_epochs = loss, epoch, 0
        else:
            self.bad_epochs += 1
            self.stopped_early = self.bad_epochs >= patience
        return improved


@dataclass
class TrainResult:
    progress: Progress
    best_state: dict[str, torch.Tensor]  # the model's state dict at the best epoch
    resumed_from: int = 0


def train(model: ContrastiveModel, graph: GraphTensors, cfg: GnnConfig, store: CheckpointStore | None = None,
          resume: bool = False, on_epoch_end: Callable[[int, float], None] | None = None,
          show_progress: bool | None = None) -> TrainResult:
    """Pretrain ``model`` on ``graph``; with ``resume``, continue from ``store``'s latest checkpoint.

    ``on_epoch_end(epoch, loss)`` runs after each epoch's checkpoint is written.
    """
    optimizer = torch.optim.Adam(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    progress, best_state = Progress(), _copy_state(model)
    resumed_from = 0
    if resume and store is not None:
        restored = _restore(store, model, optimizer)
        if restored is not None:
            progress, best_state = restored
            resumed_from = progress.epoch
            log.info("gnn: resuming after epoch %d (best loss %.4f at epoch %d)",
                     progress.epoch, progress.best_loss, progress.best_epoch)
    model.train()
    disable = None if show_progress is None else not show_progress  # None: a bar on terminals only
    with tqdm(total=cfg.epochs, initial=progress.epoch, desc="pretrain-gnn", unit="epoch", disable=disable) as bar:
        while progress.epoch < cfg.epochs and not progress.stopped_early:
            epoch = progress.epoch + 1
            loss, seconds = _step(model, graph, cfg, optimizer)
            if progress.update(epoch, loss, seconds, cfg.min_delta, cfg.patience):
                best_state = _copy_state(model)
            if store is not None:
                store.save(epoch, {"model": model.state_dict(), "optimizer": optimizer.state_dict(),
                                   "best_model": best_state}, asdict(progress))
            _report(bar, progress, cfg.epochs, loss, seconds)
            if on_epoch_end is not None:
                on_epoch_end(epoch, loss)
    if progress.stopped_early:
        log.info("gnn: loss plateau, stopped after epoch %d (best %.4f at epoch %d)", progress.epoch, progress.best_loss, progress.best_epoch)
    return TrainResult(progress, best_state, resumed_from)


def _report(bar, progress: Progress, epochs: int, loss: float, seconds: float) -> None:
    bar.update(1)
    bar.set_postfix(loss=f"{loss:.4f}", best=f"{progress.best_loss:.4f}")
    if progress.epoch % LOG_EVERY == 0 or progress.epoch == epochs or progress.stopped_early:
        log.info("gnn: epoch %d/%d loss %.4f (best %.4f at epoch %d), %.3f s", progress.epoch, epochs, loss,
                 progress.best_loss, progress.best_epoch, seconds)


def _step(model: ContrastiveModel, graph: GraphTensors, cfg: GnnConfig, optimizer: torch.optim.Optimizer) -> tuple[float, float]:
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


def _restore(store: CheckpointStore, model: ContrastiveModel, optimizer: torch.optim.Optimizer):
    """(progress, best state) from the latest checkpoint, or None (logged) when there is none to use."""
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
    best_state = {k: v.to(device) for k, v in states["best_model"].items()}
    return Progress(**saved), best_state
