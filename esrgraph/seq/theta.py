"""Choosing each user group's head weight θ on the validation split.

A group's θ changes only that group's scores, so each group is tuned on its
own users, over the grid 0, 0.1, …, 1, by NDCG@10 (the early-stopping
metric) of its validation targets:

* ``valid_protocol``: the grid value with the best score under the
  early-stopping protocol;
* ``both_protocols``: the grid value whose smaller relative gain over θ = 0,
  of the sampled and the full protocol, is largest. A head that lowers
  either protocol's score at every θ is switched off.

Ties go to the smaller θ, nearer the shared score. θ = 0 is on the grid, so
a head that does not help its group is switched off rather than imposed.
Only validation data is read; test data never is.
"""

from __future__ import annotations

import logging

import numpy as np
import torch

from ..eval.evaluate import Evaluator
from ..eval.metrics import metrics_from_ranks
from .heads import HEAD, TAIL
from .model import SeqRecommender
from .trainer import VALID_METRIC

log = logging.getLogger(__name__)

GRID = tuple(round(0.1 * i, 1) for i in range(11))
BOTH = ("sampled", "full")


def tune_theta(model: SeqRecommender, evaluator: Evaluator, valid_protocol: str, criterion: str = "valid_protocol") -> dict:
    """Set ``model``'s fixed θ per group from validation; returns the choice and every grid point's scores."""
    protocols = BOTH if criterion == "both_protocols" else (valid_protocol,)
    heads, was_training = model.heads, model.training
    curves = {p: {"head": [], "tail": []} for p in protocols}
    model.eval()  # no dropout: the scores inference will give
    mixer = _Remix(model, evaluator.data.num_users)
    tail = heads.tail_users.cpu().numpy()  # ranks come back for every user, in user order
    for theta in GRID:
        heads.theta_fixed.fill_(theta)
        for protocol in protocols:
            _, _, ranks = evaluator.ranks(mixer, "valid", protocol)
            for name, mask in (("head", ~tail), ("tail", tail)):
                score = metrics_from_ranks(ranks[mask], evaluator.cfg.ks)[VALID_METRIC] if mask.any() else None
                curves[protocol][name].append(score)
    model.train(was_training)
    chosen = {name: choose([curves[p][name] for p in protocols]) for name in ("head", "tail")}
    heads.theta_fixed[HEAD], heads.theta_fixed[TAIL] = chosen["head"], chosen["tail"]
    log.info("heads: θ chosen on validation (%s): head users %.1f, tail users %.1f",
             " and ".join(protocols), chosen["head"], chosen["tail"])
    if len(protocols) == 1:  # the layout of runs made before both_protocols existed
        return {"theta": chosen, f"valid_{VALID_METRIC}_by_theta": {"grid": list(GRID), **curves[protocols[0]]}}
    return {"theta": chosen, "criterion": criterion, f"valid_{VALID_METRIC}_by_theta": {"grid": list(GRID), **curves}}


class _Remix:
    """Scores like ``model`` at its current θ. Each user's shared and head vectors are
    encoded on the first request (the evaluator's own batch) and only re-mixed after,
    so the grid costs one encoding of the validation users, not one per point."""

    def __init__(self, model: SeqRecommender, num_users: int):
        self.model = model
        self.known = torch.zeros(num_users, dtype=torch.bool)
        self.cache: torch.Tensor | None = None  # [2, users, D]: shared and head vectors

    def user_vectors(self, items: torch.Tensor, lengths: torch.Tensor, users: torch.Tensor | None = None) -> torch.Tensor:
        if not self.known[users.cpu()].all():
            shared = self.model.user_vectors(items, lengths)
            if self.cache is None:
                self.cache = shared.new_zeros((2, len(self.known), shared.shape[1]))
            self.cache[0, users], self.cache[1, users] = shared, self.model.heads.project(shared, users)
            self.known[users.cpu()] = True
        return self.model.heads(self.cache[0, users], users, self.cache[1, users])

    @property
    def appended_tokens(self) -> int:
        return self.model.appended_tokens

    def item_tables(self) -> torch.Tensor:
        return self.model.item_tables()

    def score_all(self, users: torch.Tensor, tables: torch.Tensor | None = None) -> torch.Tensor:
        return self.model.score_all(users, tables)

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
