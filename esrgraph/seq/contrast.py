"""Contrastive sequence augmentation, an auxiliary loss term the model owns.

"Contrastive Learning for Sequential Recommendation" (ICDE 2022): each user's
training sequence is augmented twice, each time by one of three operators drawn
at random, and the two encodings of a user are pulled together while the other
users of the batch are pushed away (an in-batch InfoNCE over 2B vectors). The
operators:

* crop: a random contiguous share ``crop`` of the sequence;
* mask: a share ``mask`` of the items replaced by the padding item (causal
  models own no mask token; the padding item is a zero id vector);
* reorder: a random contiguous share ``reorder`` of the sequence shuffled.

The point for the long tail: a rare item's neighbours in a sequence, not only
its few next-item targets, shape the encodings it takes part in.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from ..data.sequences import Batch, SequenceData
from .config import ContrastConfig


def augment(seq: np.ndarray, operator: int, cfg: ContrastConfig, generator: torch.Generator) -> np.ndarray:
    """One augmentation of ``seq`` by ``operator`` (0 crop, 1 mask, 2 reorder); sequences of one item stay."""
    n = len(seq)
    if n < 2:
        return seq
    if operator == 0:
        keep = max(1, int(cfg.crop * n))
        start = int(torch.randint(n - keep + 1, (1,), generator=generator))
        return seq[start : start + keep]
    out = seq.copy()
    if operator == 1:
        hidden = torch.randperm(n, generator=generator)[: int(cfg.mask * n)].numpy()
        out[hidden] = 0
        return out
    span = max(2, int(cfg.reorder * n))
    start = int(torch.randint(n - span + 1, (1,), generator=generator))
    out[start : start + span] = seq[start : start + span][torch.randperm(span, generator=generator).numpy()]
    return out


class SequenceContrast:
    """``weight`` · the in-batch InfoNCE of two augmentations of each user's training sequence."""

    def __init__(self, cfg: ContrastConfig, data: SequenceData):
        self.cfg = cfg
        self.data = data

    def begin_epoch(self, model) -> None:
        pass

    def draw(self, users: np.ndarray, generator: torch.Generator, appended_tokens: int) -> tuple[Batch, Batch]:
        """The two augmented views of the users' training sequences, one row per user each."""
        views = []
        for _ in range(2):
            operators = torch.randint(3, (len(users),), generator=generator).tolist()
            seqs = [augment(self.data.train_sequence(u), op, self.cfg, generator) for u, op in zip(users, operators)]
            items, lengths = self.data.pad(seqs, appended_tokens)
            views.append(Batch(torch.from_numpy(np.asarray(users)), items, lengths))
        return views[0], views[1]

    def loss(self, model, batch, outputs: torch.Tensor, drawn: tuple[Batch, Batch]) -> torch.Tensor:
        """Summed over the batch's users, divided by ``batch.size`` (the global batch's users)."""
        a, b = (model.user_vectors(view.items, view.lengths) for view in drawn)
        return self.cfg.weight * info_nce(a, b, self.cfg.temperature) / float(batch.size)


def info_nce(a: torch.Tensor, b: torch.Tensor, temperature: float) -> torch.Tensor:
    """Summed InfoNCE of paired rows of ``a`` and ``b`` [B, D]: each of the 2B vectors against the 2B − 2 others."""
    n = len(a)
    z = F.normalize(torch.cat([a, b]), dim=-1)
    logits = z @ z.T / temperature
    logits.fill_diagonal_(-float("inf"))
    partner = torch.cat([torch.arange(n, 2 * n), torch.arange(n)]).to(a.device)
    return F.cross_entropy(logits, partner, reduction="sum") / 2
