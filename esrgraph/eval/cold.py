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

import itertools

import numpy as np
import torch

from ..data.sequences import SequenceData
from .blocks import COLUMNS_PER_PASS, mask_block
from .metrics import metrics_from_ranks
from .protocols import Scorer, candidate_counts, excluded_pairs, target_blocks_first

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
        among_cold, among_all = cold_ranks(model, vectors, tables, batch.targets, histories, data.num_warm)
        ranks["among_cold"].append(among_cold.cpu().numpy())
        ranks["among_all"].append(among_all.cpu().numpy())
    return {name: {"queries": len(queries), **metrics_from_ranks(np.concatenate(r), ks)} for name, r in ranks.items()}


def cold_ranks(
    model: Scorer,
    vectors: torch.Tensor,
    tables: torch.Tensor,
    targets: torch.Tensor,
    histories: list[np.ndarray],
    num_warm: int,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Per row, the candidates scored at least as high as its cold target: among the other cold items,
    and among every item outside its history. Scored :data:`COLUMNS_PER_PASS` items at a time, as full
    ranking is (the blocks holding the targets first, so each target's score comes from its block's
    product): no [users, catalogue] matrix at a million items."""
    num_items = len(tables) - 1
    device = vectors.device
    rows = torch.arange(len(targets), device=device)
    excluded = excluded_pairs(len(targets), histories, targets, device)  # histories hold warm items only
    blocks, with_targets = target_blocks_first(targets, COLUMNS_PER_PASS, num_items)
    target, held = None, []
    for lo, hi in blocks[:with_targets]:
        scores = model.score_all(vectors, tables, columns=slice(lo, hi))
        target = scores.new_empty(len(targets)) if target is None else target
        inside = (targets >= lo) & (targets < hi)
        target[inside] = scores[rows[inside], targets[inside] - lo]
        held.append((lo, hi, scores))
    among_cold = torch.zeros(len(targets), dtype=torch.long, device=device)
    among_all = torch.zeros_like(among_cold)
    scored = ((lo, hi, model.score_all(vectors, tables, columns=slice(lo, hi))) for lo, hi in blocks[with_targets:])
    for lo, hi, scores in itertools.chain(held, scored):
        mask_block(scores, lo, hi, *excluded)
        ahead = ~(scores < target.unsqueeze(1))  # ties and NaN candidates count against the target
        among_all += ahead.sum(1)
        among_cold += ahead[:, max(num_warm + 1 - lo, 0) :].sum(1)
    finite = target.isfinite()  # a non-finite target has every candidate ahead of it
    if not bool(finite.all()):
        among_cold = torch.where(finite, among_cold, num_items - num_warm - 1)
        among_all = torch.where(finite, among_all, candidate_counts(histories, targets, num_items).to(device))
    return among_cold, among_all
