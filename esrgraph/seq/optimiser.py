"""The recommender's optimiser: Adam, with a row-wise Adam for the item-id table where a step reads few rows.

With an objective that draws its candidates (sampled softmax, bce, gbce) a
step reads only the id rows of its inputs, targets and negatives. Dense Adam
still updates every row of the table each step, so its cost grows with the
catalogue: at 706k items it took 56% of a 10^7-interaction training step
(benchmarks/README.md). ``train.sparse_ids`` gives the table sparse gradients
and torch's SparseAdam, which moves only the rows a step read (lazy Adam:
an unread row's moments wait rather than decay).
"""

from __future__ import annotations

import logging

import torch

from ..errors import ConfigError
from ..training.optimizers import Optimizers
from .config import TrainConfig
from .model import SeqRecommender
from .objectives import Objective

# auto: below this many items dense Adam's cost is small and the exact (non-lazy) update is kept
# (benchmarks/README.md, "Sparse id-table updates"; checked for accuracy at 12,101 items only).
SPARSE_IDS_ABOVE = 50_000

log = logging.getLogger(__name__)


def uses_sparse_ids(train: TrainConfig, objective: Objective, num_items: int) -> bool:
    """Whether the id table trains with sparse gradients (``train.sparse_ids``'s size rule)."""
    if train.sparse_ids == "auto":
        return not objective.scores_every_item and train.weight_decay == 0 and num_items > SPARSE_IDS_ABOVE
    if train.sparse_ids and objective.scores_every_item:
        raise ConfigError(
            "train.sparse_ids: true needs an objective that draws its candidates (train.loss sampled_softmax, "
            "bce or gbce); the full softmax reads every row of the id table at every step"
        )
    return bool(train.sparse_ids)


def recommender_optimiser(model: SeqRecommender, train: TrainConfig):
    """Adam over the model (its training prepared); with sparse ids, SparseAdam over the id table and
    Adam over the rest."""
    if not uses_sparse_ids(train, model.parts.objective, model.num_warm):
        return torch.optim.Adam(model.parameters(), lr=train.lr, weight_decay=train.weight_decay)
    ids = model.views.ids
    ids.sparse = True  # its lookups now give sparse gradients (only the rows read)
    log.info("train-seq: sparse id-table updates (%d items; train.sparse_ids %s)", model.num_warm, train.sparse_ids)
    rest = [p for p in model.parameters() if p is not ids.weight]
    return Optimizers(
        dense=torch.optim.Adam(rest, lr=train.lr, weight_decay=train.weight_decay),
        sparse=torch.optim.SparseAdam([ids.weight], lr=train.lr),
    )
