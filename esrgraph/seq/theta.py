"""Choosing each user group's head weight θ on the validation split.

A group's θ changes only that group's scores, so each group is tuned on its
own users: θ_g is the grid value with the best validation score (the
early-stopping metric, NDCG@10) over the group's users (ties go to the
smaller θ, nearer the shared score). θ_g = 0 is on the grid, so a head that
does not help its group is switched off rather than imposed. Only validation data is read; test data never is.
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


def tune_theta(model: SeqRecommender, evaluator: Evaluator, protocol: str) -> dict:
    """Set ``model``'s fixed θ per group from validation; returns the choice and every grid point's score."""
    heads, was_training = model.heads, model.training
    curves: dict[str, list[float | None]] = {"head": [], "tail": []}
    model.eval()  # no dropout: the scores inference will give
    for theta in GRID:
        heads.theta_fixed.fill_(theta)
        users, _, ranks = evaluator.ranks(model, "valid", protocol)
        tail = heads.tail_users[torch.from_numpy(users)].numpy()
        for name, mask in (("head", ~tail), ("tail", tail)):
            curves[name].append(metrics_from_ranks(ranks[mask], evaluator.cfg.ks)[VALID_METRIC])
    model.train(was_training)
    chosen = {name: _best(curve) for name, curve in curves.items()}
    heads.theta_fixed[HEAD], heads.theta_fixed[TAIL] = chosen["head"], chosen["tail"]
    log.info("heads: θ chosen on validation (%s): head users %.1f, tail users %.1f", protocol, chosen["head"], chosen["tail"])
    return {"theta": chosen, f"valid_{VALID_METRIC}_by_theta": {"grid": list(GRID), **curves}}


def _best(curve: list[float | None]) -> float:
    """The smallest θ reaching the curve's maximum; 0 for a group with no users."""
    if curve[0] is None:
        return 0.0
    return GRID[int(np.argmax(np.asarray(curve)))]  # argmax takes the first maximum
