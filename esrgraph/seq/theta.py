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
    mixer = _Remix(model, evaluator)
    for theta in GRID:
        heads.theta_fixed.fill_(theta)
        for protocol in protocols:
            users, _, ranks = evaluator.ranks(mixer, "valid", protocol)
            tail = heads.tail_users[torch.from_numpy(users)].cpu().numpy()
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
    """Scores like ``model`` at its current θ, from shared and head vectors of the
    validation users encoded once: each grid point only re-mixes them."""

    def __init__(self, model: SeqRecommender, evaluator: Evaluator):
        self.model = model
        data, device = evaluator.data, evaluator.device
        # the evaluator's batches (users by history length), so each vector is the one it would compute
        order = np.argsort([len(seq) for seq in data.full], kind="stable")
        shared, projected = [], []
        with torch.no_grad():
            for lo in range(0, len(order), evaluator.batch_size):
                batch = data.history_batch(order[lo: lo + evaluator.batch_size], "valid").to(device)
                vectors = model.user_vectors(batch.items, batch.lengths)
                shared.append(vectors)
                projected.append(model.heads.project(vectors, batch.users))
        back = torch.from_numpy(np.argsort(order, kind="stable")).to(device)
        self.shared, self.projected = torch.cat(shared)[back], torch.cat(projected)[back]

    def user_vectors(self, items: torch.Tensor, lengths: torch.Tensor, users: torch.Tensor | None = None) -> torch.Tensor:
        return self.model.heads(self.shared[users], users, self.projected[users])

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
    if len(curves) == 1:
        gain = values[0]
    else:
        gain = (values / np.maximum(values[:, :1], 1e-12) - 1).min(axis=0)
    return GRID[int(np.argmax(gain))]  # argmax takes the first maximum
