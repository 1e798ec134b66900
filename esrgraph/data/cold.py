"""Cold items: metadata items nobody interacted with, and the cold-item protocol's held-out items.

A held-out item's every interaction leaves the histories; each becomes a
query (the user, the item, and how many of the user's remaining items came
before it) that the cold-item protocol ranks.
"""

from __future__ import annotations

import numpy as np

from .config import DatasetConfig
from .interactions import Sequences
from .keys import sorted_ids
from .metadata import ItemMeta


def held_out_items(items: set[str], cfg: DatasetConfig) -> set[str]:
    """The cold-item protocol's held-out items: a seeded share of the interacted items."""
    share = cfg.cold_items.holdout_share
    if share <= 0:
        return set()
    ordered = sorted_ids(items)
    count = max(1, int(round(share * len(ordered))))
    picked = np.random.default_rng(cfg.cold_items.holdout_seed).choice(len(ordered), count, replace=False)
    return {ordered[i] for i in picked}


def without_held_out(sequences: Sequences, held_out: set[str], minimum: int):
    """Histories with every held-out item removed, the removed interactions as (user, item, items before it),
    and how many users fell below ``minimum`` interactions (dropped with their queries)."""
    if not held_out:
        return sequences, [], 0
    kept, queries, dropped = {}, [], 0
    for user, seq in sequences.items():
        rest = [i for i in seq if i not in held_out]
        if len(rest) < minimum:
            dropped += 1
            continue
        kept[user] = rest
        before = 0
        for item in seq:
            if item in held_out:
                if before:  # a held-out item with nothing known before it cannot be ranked from a history
                    queries.append((user, item, before))
            else:
                before += 1
    return kept, queries, dropped


def cold_item_ids(
    warm: set[str], held_out: set[str], records: dict[str, ItemMeta], key_type: str, cfg: DatasetConfig
) -> list[str]:
    """Cold items in id order: the held-out ones and, with ``keep_unseen``, metadata items nobody interacted with."""
    cold = set(held_out) - warm
    if cfg.cold_items.keep_unseen:
        offset = cfg.join.offset if key_type == "int" else 0
        ids = (str(int(k) - offset) for k in records) if key_type == "int" else iter(records)
        cold |= {i for i in ids if i not in warm}
    return sorted_ids(cold)
