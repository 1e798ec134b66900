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
        plain_adam = train.weight_decay == 0 and train.id_anchor == 0
        return not objective.scores_every_item and plain_adam and num_items > SPARSE_IDS_ABOVE
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
        optimiser = torch.optim.Adam(model.parameters(), lr=train.lr, weight_decay=train.weight_decay)
        if train.id_anchor > 0:
            optimiser.register_step_post_hook(_pull_ids_to_start(model, train.lr * train.id_anchor))
        return optimiser
    ids = model.views.ids
    ids.sparse = True  # its lookups now give sparse gradients (only the rows read)
    log.info("train-seq: sparse id-table updates (%d items; train.sparse_ids %s)", model.num_warm, train.sparse_ids)
    rest = [p for p in model.parameters() if p is not ids.weight]
    return Optimizers(
        dense=torch.optim.Adam(rest, lr=train.lr, weight_decay=train.weight_decay),
        sparse=torch.optim.SparseAdam([ids.weight], lr=train.lr),
    )


def _pull_ids_to_start(model: SeqRecommender, rate: float):
    """A hook moving every id row ``rate`` of its way back to its start after each step (decoupled, like
    AdamW's decay, but towards the start instead of zero). The start is the table as built, which a resumed
    run builds again from the same inputs and seed before its checkpoint is loaded."""
    table = model.views.ids.weight
    start = table.detach().clone()

    def pull(optimiser, args, kwargs) -> None:
        with torch.no_grad():
            table.lerp_(start, rate)

    return pull
