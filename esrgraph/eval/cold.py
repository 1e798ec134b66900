"""The cold-item protocol: ranking items nobody interacted with, held out from every history.

A share of the interacted items is held out entirely (``dataset.cold_items``):
every interaction with them is removed from the histories before anything is
trained. Each removed interaction is a query: the user's history up to it,
and the held-out item as target, ranked

* ``among_cold``: against every other cold item;
* ``among_all``: against every item outside the user's history.

Ties and NaN scores count against the target, as in the other protocols.
"""

from __future__ import annotations

import numpy as np
import torch

from ..data.sequences import SequenceData
from .metrics import metrics_from_ranks
from .protocols import Scorer, ranks_in_blocks

SETS = ("among_cold", "among_all")


@torch.no_grad()
def cold_item_metrics(
    model: Scorer, data: SequenceData, queries: np.ndarray, ks, batch_size: int, device: torch.device
) -> dict:
    """{among_cold | among_all: {metric: value, "queries": n}} over the cold queries [Q, 3]."""
    tables = model.item_tables()
    ranks = {name: [] for name in SETS}
    for lo in range(0, len(queries), batch_size):
        part = queries[lo : lo + batch_size]
        batch = data.cold_batch(part, model.appended_tokens).to(device)
        vectors = model.user_vectors(batch.items, batch.lengths, batch.users)
        histories = [data.full[user][:cut] for user, _, cut in part]
        # every item past the user's history, and the cold ones (after the warm) alone; histories are warm
        among_all, among_cold = ranks_in_blocks(
            model, vectors, tables, batch.targets, histories, data.num_items, starts=(0, data.num_warm + 1)
        )
        ranks["among_cold"].append(among_cold.cpu().numpy())
        ranks["among_all"].append(among_all.cpu().numpy())
    return {name: {"queries": len(queries), **metrics_from_ranks(np.concatenate(r), ks)} for name, r in ranks.items()}
