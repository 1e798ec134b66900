"""Fitting the user-group readouts after training (``seq.readouts.mode: fitted``).

The shared model is frozen and read in eval mode (no dropout): the vectors a
readout is fitted on are the ones it will see at inference. Each group's
readout W_g (starting as the identity) is fitted on the next-item targets of
its own users' training positions with a full softmax over every item.
Validation and test items are never read.
"""

from __future__ import annotations

import logging

import torch
from tqdm.auto import tqdm

from ..data.sequences import SequenceData
from .config import ReadoutsConfig
from .model import SeqRecommender
from .objectives import Candidates, Objective, objective_loss

log = logging.getLogger(__name__)


def fit_readouts(model: SeqRecommender, data: SequenceData, cfg: ReadoutsConfig, seed: int) -> dict:
    """Fit each group's readout on its users' training positions; marks them fitted. Returns the final losses.

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
        vectors, targets = model.position_vectors(data, users)
        layer = readouts.proj[g].requires_grad_(True)
        losses[name] = _fit_layer(model, layer, vectors, targets, items, cfg, generator, name)
        layer.requires_grad_(False)  # as built: no gradient outside fitting
    readouts.fitted.fill_(True)
    log.info(
        "readouts: fitted after training, final loss %s", ", ".join(f"{k} users {v:.4f}" for k, v in losses.items())
    )
    return losses


def _fit_layer(
    model: SeqRecommender,
    layer: torch.nn.Linear,
    vectors: torch.Tensor,
    targets: torch.Tensor,
    items: torch.Tensor,
    cfg: ReadoutsConfig,
    generator: torch.Generator,
    name: str,
) -> float:
    """Adam over shuffled batches of positions with a full softmax; returns the last epoch's mean loss."""
    optimizer = torch.optim.Adam(layer.parameters(), lr=cfg.fit_lr)
    mean = float("nan")
    for _ in tqdm(range(cfg.fit_epochs), desc=f"fit the {name}-user readout", unit="epoch", leave=False):
        order = torch.randperm(len(targets), generator=generator).to(vectors.device)
        total = 0.0
        for lo in range(0, len(order), cfg.fit_batch_size):
            pick = order[lo : lo + cfg.fit_batch_size]
            picked = targets[pick]
            value = objective_loss(
                Objective("ce"),
                layer(vectors[pick]),
                picked,
                Candidates(),
                lambda ids: items[ids],
                lambda: items,
                model.num_items,
            ) / len(pick)
            optimizer.zero_grad(set_to_none=True)
            value.backward()
            optimizer.step()
            total += float(value.detach()) * len(pick)
        mean = total / len(targets)
    return mean
