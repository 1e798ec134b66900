"""The pretraining's epochs on the training core (:mod:`esrgraph.training.loop`).

One epoch is one optimiser step on the whole graph: both augmented views
through the encoder and the full contrastive loss over every item (the model
owns the loss: :meth:`~.model.ContrastiveModel.loss`). The monitored value is
the loss itself: training stops on a plateau (``gnn.patience`` epochs without
a drop of more than ``gnn.min_delta``), keeps the weights of the lowest loss
and checkpoints every epoch, so a resumed run ends with identical weights.
"""

from __future__ import annotations

import torch

from ..training.checkpoint import CheckpointStore
from ..training.loop import EpochCallback, TrainingLoop, TrainResult
from ..training.stopping import EarlyStopping
from .config import GnnConfig
from .model import ContrastiveModel
from .tensors import GraphTensors

LOG_EVERY = 10  # epochs between progress lines in the log (the progress bar shows every epoch on a terminal)


class PretrainTask:
    """The pretraining as the training core sees it: one batch per epoch, the whole graph."""

    metric = None  # monitors the loss

    def __init__(self, model: ContrastiveModel, graph: GraphTensors, cfg: GnnConfig):
        self.model = model
        self.graph = graph
        self.cfg = cfg

    def begin_epoch(self, epoch: int) -> None:
        pass

    def batches(self, epoch: int) -> list[GraphTensors]:
        return [self.graph]

    def loss(self, graph: GraphTensors, network: torch.nn.Module) -> torch.Tensor:
        return network.loss(graph, self.cfg)

    def validate(self) -> dict[str, float]:
        raise NotImplementedError("the pretraining monitors its loss")


def pretraining_loop(
    model: ContrastiveModel,
    graph: GraphTensors,
    cfg: GnnConfig,
    store: CheckpointStore | None = None,
    callbacks: tuple[EpochCallback, ...] = (),
) -> TrainingLoop:
    optimizer = torch.optim.Adam(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    return TrainingLoop(
        PretrainTask(model, graph, cfg),
        optimizer,
        lambda: EarlyStopping(cfg.patience, "min", min_delta=cfg.min_delta),
        cfg.epochs,
        store,
        label="pretrain-gnn",
        callbacks=callbacks,
        log_every=LOG_EVERY,
    )


def train(
    model: ContrastiveModel,
    graph: GraphTensors,
    cfg: GnnConfig,
    store: CheckpointStore | None = None,
    resume: bool | str = False,
    callbacks: tuple[EpochCallback, ...] = (),
) -> TrainResult:
    """Pretrain ``model`` on ``graph`` and leave the best weights in it; ``resume`` as in
    :func:`~esrgraph.training.loop.resumes`."""
    loop = pretraining_loop(model, graph, cfg, store, callbacks)
    result = loop.fit(resume)
    model.load_state_dict(loop.best_state(result))
    return result
