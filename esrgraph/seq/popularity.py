"""Correcting a trained model's popularity bias at inference (``seq.popularity_correction: fitted``).

A next-item model trained with a softmax learns the popularity prior along
with what a user wants: its scores rank popular items above rarer ones a user
is just as likely to want, and the more so the more the views it fuses agree
on what is popular. Subtracting β·log(1 + training popularity) from every
score removes a share β of that prior ("Long-tail learning via logit
adjustment", ICLR 2021). β is chosen on the validation split, by NDCG@10
under ``train.valid_protocol``, over a grid that includes 0 (no correction);
ties go to the smaller β. Test data is never read.
"""

from __future__ import annotations

import logging

import numpy as np
import torch

from ..eval.evaluate import Evaluator
from ..eval.metrics import GROUPS, VALID_METRIC
from .model import SeqRecommender

log = logging.getLogger(__name__)

GRID = (0.0, 0.05, 0.1, 0.15, 0.2, 0.3, 0.4, 0.5, 0.6, 0.8, 1.0)


def fit_popularity_correction(model: SeqRecommender, evaluator: Evaluator, protocol: str) -> dict:
    """Set ``model.item_bias`` to −β·log(1 + popularity) with β chosen on validation; returns the choice
    and every grid point's validation NDCG@10 by group."""
    popularity = evaluator.data.train_popularity().float().to(model.item_bias.device)
    prior = torch.log1p(popularity)
    cached = _CachedUsers(model, evaluator.data.num_users)
    curves = {group: [] for group in GROUPS}
    with torch.no_grad():
        for beta in GRID:
            model.item_bias.copy_(-beta * prior)
            metrics = evaluator.evaluate(cached, "valid", [protocol])[protocol]
            for group in GROUPS:
                curves[group].append(metrics[group][VALID_METRIC])
        beta = GRID[int(np.argmax(curves["overall"]))]  # the first (smallest) of equal maxima
        model.item_bias.copy_(-beta * prior)
    log.info(
        "popularity correction: β = %.2f chosen on validation (%s %.4f, against %.4f uncorrected)",
        beta,
        VALID_METRIC,
        max(curves["overall"]),
        curves["overall"][0],
    )
    return {"beta": beta, f"valid_{VALID_METRIC}": max(curves["overall"]), "grid": list(GRID), "by_beta": curves}


class _CachedUsers:
    """Scores like ``model``; each user's vector is encoded on its first request only, since β changes
    the items' scores, never the users' vectors."""

    def __init__(self, model: SeqRecommender, num_users: int):
        self.model = model
        self.known = torch.zeros(num_users, dtype=torch.bool)
        self.cache: torch.Tensor | None = None
        self.appended_tokens = model.appended_tokens

    def eval(self):
        self.model.eval()
        return self

    def user_vectors(self, items, lengths, users=None):
        if not self.known[users.cpu()].all():
            vectors = self.model.user_vectors(items, lengths, users)
            if self.cache is None:
                self.cache = vectors.new_zeros((len(self.known), vectors.shape[1]))
            self.cache[users] = vectors
            self.known[users.cpu()] = True
        return self.cache[users]

    def item_tables(self):
        return self.model.item_tables()

    def score_all(self, users, tables=None, columns=None):
        return self.model.score_all(users, tables, columns)

    def score_items(self, users, items):
        return self.model.score_items(users, items)
