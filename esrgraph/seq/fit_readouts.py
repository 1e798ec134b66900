"""Fitting the user-group readouts after training (``seq.readouts.mode: fitted``), on the training core.

The shared model is frozen and read in eval mode (no dropout): the vectors a
readout is fitted on are the ones it will see at inference. Each group's
readout W_g (starting as the identity) is fitted on the next-item targets of
its own users' training positions with a full softmax over every item, for
``fit_epochs`` epochs (its patience never runs out; it keeps its last
weights). Validation and test items are never read.
"""

from __future__ import annotations

import logging

import torch

from ..data.sequences import SequenceData
from ..training.loop import TrainingLoop
from ..training.stopping import EarlyStopping
from .config import STEP_POSITIONS, ReadoutsConfig
from .model import SeqRecommender
from .objectives import Candidates, FullSoftmax

log = logging.getLogger(__name__)


class ReadoutTask:
    """One group's readout as the training core sees it: shuffled batches of frozen position vectors."""

    metric = None  # no validation: θ is chosen on validation afterwards

    def __init__(self, layer, vectors, targets, items, cfg: ReadoutsConfig, generator: torch.Generator):
        self.model = layer
        self.vectors, self.targets, self.items = vectors, targets, items
        self.cfg = cfg
        self.generator = generator
        self.objective = FullSoftmax(len(items) - 1)

    def begin_epoch(self, epoch: int) -> None:
        pass

    def batches(self, epoch: int) -> list[torch.Tensor]:
        order = torch.randperm(len(self.targets), generator=self.generator).to(self.vectors.device)
        return [order[lo : lo + self.cfg.fit_batch_size] for lo in range(0, len(order), self.cfg.fit_batch_size)]

    def loss(self, pick: torch.Tensor, network: torch.nn.Module) -> torch.Tensor:
        items = self.items
        summed = self.objective.loss(
            network(self.vectors[pick]), self.targets[pick], Candidates(), lambda ids: items[ids], lambda: items
        )
        return summed / len(pick)

    def validate(self) -> dict[str, float]:
        raise NotImplementedError("readouts are fitted for a fixed number of epochs")


def fit_readouts(
    model: SeqRecommender, data: SequenceData, cfg: ReadoutsConfig, seed: int, positions: int = STEP_POSITIONS
) -> dict:
    """Fit each group's readout on its users' training positions; marks them fitted. Returns the final losses.
    ``positions``: the most input positions one encoder pass reads (``train.step_positions``).

    Only the readouts learn: the vectors are computed without gradients and the item table is fixed.
    """
    readouts = model.readouts
    generator = torch.Generator().manual_seed(seed)
    model.eval()
    with torch.no_grad():
        items = model.warm_tables()  # cold items are never targets
    trainable = data.trainable_users()  # users with at least one training position
    groups = readouts.groups(torch.from_numpy(trainable).to(readouts.group_of.device)).cpu().numpy()
    losses = {}
    for g, name in enumerate(readouts.names):
        users = trainable[groups == g]
        if len(users) == 0:
            log.info("readouts: no %s users with a training position; their readout stays the identity", name)
            continue
        vectors, targets = model.position_vectors(data, users, positions=positions)
        layer = readouts.proj[g].requires_grad_(True)
        loop = TrainingLoop(
            ReadoutTask(layer, vectors, targets, items, cfg, generator),
            torch.optim.Adam(layer.parameters(), lr=cfg.fit_lr),
            lambda: EarlyStopping(cfg.fit_epochs + 1, "min"),
            cfg.fit_epochs,
            label=f"fit the {name}-user readout",
            log_every=cfg.fit_epochs,
        )
        losses[name] = loop.fit().history[-1]["loss"]
        layer.requires_grad_(False)  # as built: no gradient outside fitting
    readouts.fitted.fill_(True)
    model.eval()
    log.info(
        "readouts: fitted after training, final loss %s", ", ".join(f"{k} users {v:.4f}" for k, v in losses.items())
    )
    return losses
