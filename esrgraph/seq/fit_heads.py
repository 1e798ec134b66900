"""Fitting the head/tail heads after training (``seq.heads.fit: after``).

The shared model is frozen and read in eval mode (no dropout): the vectors
a head is fitted on are the ones it will see at inference. Each group's head
W_g (starting as the identity) is fitted on the next-item targets of its own
users' training positions, with a full softmax over every item (``ce``, by
default: the heads then learn what the shared model's sampled-negative loss
leaves out, how a target ranks against every other item) or with sampled
negatives (``bce``). Validation and test items are never read.
"""

from __future__ import annotations

import logging

import numpy as np
import torch
from tqdm.auto import tqdm

from .batches import SequenceData
from .config import HeadsConfig
from .heads import HEAD, TAIL
from .model import SeqRecommender
from .trainer import sample_negatives

log = logging.getLogger(__name__)

ENCODE_BATCH = 256


@torch.no_grad()
def position_vectors(model: SeqRecommender, data: SequenceData, users: np.ndarray,
                     device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    """The model's vectors [P, D] at every training position of ``users``, and their targets [P]."""
    vectors, targets = [], []
    for lo in range(0, len(users), ENCODE_BATCH):
        batch = data.training_batch(users[lo: lo + ENCODE_BATCH]).to(device)
        outputs = model.sequence_outputs(batch.items, batch.lengths)
        where = batch.targets > 0
        vectors.append(outputs[where])
        targets.append(batch.targets[where])
    return torch.cat(vectors), torch.cat(targets)


def fit_heads(model: SeqRecommender, data: SequenceData, cfg: HeadsConfig, negatives: int,
              device: torch.device, seed: int) -> dict:
    """Fit each group's head on its users' training positions; marks the heads fitted. Returns the final losses.

    Only the heads learn: the vectors are computed without gradients and the item table is detached.
    """
    heads, was_training = model.heads, model.training
    model.eval()
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        items = model.item_tables()
    trainable = data.trainable_users()  # users with at least one training position
    tail = heads.tail_users.cpu().numpy()[trainable]
    losses = {}
    for name, group, users in (("head", HEAD, trainable[~tail]), ("tail", TAIL, trainable[tail])):
        if len(users) == 0:
            log.info("heads: no %s users with a training position; their head stays the identity", name)
            continue
        vectors, targets = position_vectors(model, data, users, device)
        layer = heads.proj[group].requires_grad_(True)
        losses[name] = _fit_layer(model, layer, vectors, targets, items, cfg, negatives, generator, name)
        layer.requires_grad_(False)  # as built: no gradient outside fitting
    model.train(was_training)
    heads.fitted.fill_(True)
    log.info("heads: fitted after training (%s), final loss %s", cfg.fit_loss,
             ", ".join(f"{k} users {v:.4f}" for k, v in losses.items()))
    return losses


def _fit_layer(model: SeqRecommender, layer: torch.nn.Linear, vectors: torch.Tensor, targets: torch.Tensor,
               items: torch.Tensor, cfg: HeadsConfig, negatives: int, generator: torch.Generator, name: str) -> float:
    """Adam over shuffled batches of positions with the model's own position loss; returns the last epoch's mean."""
    optimizer = torch.optim.Adam(layer.parameters(), lr=cfg.fit_lr)
    mean = float("nan")
    for _ in tqdm(range(cfg.fit_epochs), desc=f"fit the {name}-user head", unit="epoch", leave=False):
        order = torch.randperm(len(targets), generator=generator).to(vectors.device)
        total = 0.0
        for lo in range(0, len(order), cfg.fit_batch_size):
            pick = order[lo: lo + cfg.fit_batch_size]
            picked = targets[pick]
            if cfg.fit_loss == "ce":
                candidates = (items,)
            else:
                drawn = sample_negatives(picked.cpu(), model.num_items, negatives, generator).to(picked.device)
                candidates = (items[picked], items[drawn])
            value = model.position_loss(layer(vectors[pick]), picked, candidates, cfg.fit_loss) / len(pick)
            optimizer.zero_grad(set_to_none=True)
            value.backward()
            optimizer.step()
            total += float(value.detach()) * len(pick)
        mean = total / len(targets)
    return mean
