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
import torch.nn.functional as F
from tqdm.auto import tqdm

from .batches import SequenceData
from .config import HeadsConfig
from .heads import HEAD, TAIL
from .model import SeqRecommender

log = logging.getLogger(__name__)

ENCODE_BATCH = 256


@torch.no_grad()
def position_vectors(model: SeqRecommender, data: SequenceData, users: np.ndarray,
                     device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    """The frozen model's vectors [P, D] at every training position of ``users``, and their targets [P]."""
    vectors, targets = [], []
    for lo in range(0, len(users), ENCODE_BATCH):
        batch = data.training_batch(users[lo: lo + ENCODE_BATCH]).to(device)
        outputs = model.sequence_outputs(batch.items, batch.lengths)
        where = batch.targets > 0
        vectors.append(outputs[where])
        targets.append(batch.targets[where])
    dim = model.user_dim
    if not vectors:
        return torch.zeros((0, dim), device=device), torch.zeros(0, dtype=torch.long, device=device)
    return torch.cat(vectors), torch.cat(targets)


def fit_heads(model: SeqRecommender, data: SequenceData, cfg: HeadsConfig, negatives: int,
              device: torch.device, seed: int) -> dict:
    """Fit each group's head on its users' training positions; marks the heads fitted. Returns the final losses."""
    heads, was_training = model.heads, model.training
    model.eval()
    frozen = [(p, p.requires_grad) for p in model.parameters()]
    for p, _ in frozen:
        p.requires_grad_(False)
    generator = torch.Generator().manual_seed(seed)
    items = model.item_tables().detach()
    trainable = data.trainable_users()
    tail = heads.tail_users.cpu().numpy()[trainable]
    losses = {}
    try:
        for name, group, users in (("head", HEAD, trainable[~tail]), ("tail", TAIL, trainable[tail])):
            vectors, targets = position_vectors(model, data, users, device)
            if len(targets) == 0:
                log.info("heads: no %s users with a training position; their head stays the identity", name)
                continue
            layer = heads.proj[group]
            for p in layer.parameters():
                p.requires_grad_(True)
            losses[name] = _fit_layer(layer, vectors, targets, items, cfg, negatives, generator, name)
            for p in layer.parameters():
                p.requires_grad_(False)
    finally:
        for p, flag in frozen:
            p.requires_grad_(flag)
        model.train(was_training)
    heads.fitted.fill_(True)
    log.info("heads: fitted after training (%s), final loss %s", cfg.fit_loss,
             ", ".join(f"{k} users {v:.4f}" for k, v in losses.items()))
    return losses


def _fit_layer(layer: torch.nn.Linear, vectors: torch.Tensor, targets: torch.Tensor, items: torch.Tensor,
               cfg: HeadsConfig, negatives: int, generator: torch.Generator, name: str) -> float:
    """Adam over shuffled batches of positions; returns the last epoch's mean loss."""
    optimizer = torch.optim.Adam(layer.parameters(), lr=cfg.fit_lr)
    size = cfg.fit_batch_size
    mean = float("nan")
    for _ in tqdm(range(cfg.fit_epochs), desc=f"fit the {name}-user head", unit="epoch", leave=False):
        order = torch.randperm(len(targets), generator=generator).to(vectors.device)
        total = 0.0
        for lo in range(0, len(order), size):
            pick = order[lo: lo + size]
            value = _loss(layer(vectors[pick]), targets[pick], items, cfg.fit_loss, negatives, generator)
            optimizer.zero_grad(set_to_none=True)
            value.backward()
            optimizer.step()
            total += float(value.detach()) * len(pick)
        mean = total / len(targets)
    return mean


def _loss(hidden: torch.Tensor, targets: torch.Tensor, items: torch.Tensor, kind: str, negatives: int,
          generator: torch.Generator) -> torch.Tensor:
    """Mean next-item loss of ``hidden`` [P, D] for ``targets`` [P] over the item table [N + 1, D]."""
    if kind == "ce":
        logits = hidden @ items.T
        logits[:, 0] = -float("inf")
        return F.cross_entropy(logits, targets)
    drawn = torch.randint(1, items.shape[0], (len(targets), negatives), generator=generator).to(targets.device)
    pos = (hidden * items[targets]).sum(-1)
    neg = (hidden.unsqueeze(1) * items[drawn]).sum(-1)
    return (F.softplus(-pos) + F.softplus(neg).mean(-1)).mean()
