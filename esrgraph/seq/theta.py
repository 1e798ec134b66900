"""Choosing each user group's readout weight θ on the validation split.

A group's θ changes only that group's scores, so each group is tuned on its
own users, over the grid 0, 0.1, …, 1, by NDCG@10 of its validation targets
under both protocols: the chosen θ is the grid value whose smaller relative
gain over θ = 0 (the sampled protocol's and the full protocol's) is largest.
A readout that lowers either protocol's score at every θ is switched off
(θ = 0 is on the grid). Ties go to the smaller θ, nearer the shared score.
Only validation data is read; test data never is.
"""

from __future__ import annotations

import logging

import numpy as np
import torch

from ..eval.evaluate import Evaluator
from ..eval.metrics import VALID_METRIC, metrics_from_ranks
from .model import SeqRecommender
from .views import ViewTables

log = logging.getLogger(__name__)

GRID = tuple(round(0.1 * i, 1) for i in range(11))
PROTOCOLS = ("sampled", "full")


def tune_theta(model: SeqRecommender, evaluator: Evaluator) -> dict:
    """Set ``model``'s θ per group from validation; returns the choice and every grid point's scores."""
    readouts, was_training = model.readouts, model.training
    groups = readouts.groups(torch.arange(evaluator.data.num_users, device=readouts.group_of.device)).cpu().numpy()
    curves = {p: {name: [] for name in readouts.names} for p in PROTOCOLS}
    model.eval()  # no dropout: the scores inference will give
    mixer = _Remix(model, evaluator.data.num_users)
    for theta in GRID:
        readouts.theta.fill_(theta)
        for protocol in PROTOCOLS:
            users, _, ranks = evaluator.ranks(mixer, "valid", protocol)
            for g, name in enumerate(readouts.names):
                mask = groups[users] == g
                score = metrics_from_ranks(ranks[mask], evaluator.cfg.ks)[VALID_METRIC] if mask.any() else None
                curves[protocol][name].append(score)
    model.train(was_training)
    chosen = {name: choose([curves[p][name] for p in PROTOCOLS]) for name in readouts.names}
    readouts.theta.copy_(torch.tensor([chosen[name] for name in readouts.names]))
    log.info("readouts: θ chosen on validation: %s", ", ".join(f"{n} users {t:.1f}" for n, t in chosen.items()))
    return {"theta": chosen, f"valid_{VALID_METRIC}_by_theta": {"grid": list(GRID), **curves}}


class _Remix:
    """Scores like ``model`` at its current θ. Each user's shared and readout vectors are
    encoded on the first request (the evaluator's own batch) and only re-mixed after,
    so the grid costs one encoding of the validation users, not one per point."""

    def __init__(self, model: SeqRecommender, num_users: int):
        self.model = model
        self.known = torch.zeros(num_users, dtype=torch.bool)
        self.cache: torch.Tensor | None = None  # [2, users, D]: shared and readout vectors

    def user_vectors(
        self, items: torch.Tensor, lengths: torch.Tensor, users: torch.Tensor | None = None
    ) -> torch.Tensor:
        readouts = self.model.readouts
        if not self.known[users.cpu()].all():
            shared = self.model.user_vectors(items, lengths)
            if self.cache is None:
                self.cache = shared.new_zeros((2, len(self.known), shared.shape[1]))
            self.cache[0, users], self.cache[1, users] = shared, readouts.project(shared, users)
            self.known[users.cpu()] = True
        return readouts(self.cache[0, users], users, self.cache[1, users])

    @property
    def appended_tokens(self) -> int:
        return self.model.appended_tokens

    def item_tables(self) -> ViewTables:
        return self.model.item_tables()

    def score_all(
        self, users: torch.Tensor, tables: ViewTables | None = None, columns: slice | None = None
    ) -> torch.Tensor:
        return self.model.score_all(users, tables, columns)

    def score_items(self, users: torch.Tensor, items: torch.Tensor) -> torch.Tensor:
        return self.model.score_items(users, items)


def choose(curves: list[list[float | None]]) -> float:
    """The smallest θ maximising the smallest relative gain over θ = 0 across ``curves``
    (one curve: its maximum); 0 for a group with no users."""
    if any(curve[0] is None for curve in curves):
        return 0.0
    values = np.asarray(curves, dtype=float)
    gain = (values / np.maximum(values[:, :1], 1e-12) - 1).min(axis=0)  # one curve: the same argmax as its own
    return GRID[int(np.argmax(gain))]  # argmax takes the first maximum
