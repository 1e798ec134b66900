"""Head and tail groups: tail users by history length, tail items by popularity (a share or a fixed threshold)."""

from __future__ import annotations

import numpy as np

from .config import GroupsConfig


def tail_users_by_length(lengths: np.ndarray, groups: GroupsConfig) -> tuple[np.ndarray, int]:
    threshold = groups.tail_user_max_length
    if threshold is None:
        threshold = _share_threshold(lengths, groups.tail_user_share)
    return lengths <= threshold, int(threshold)


def tail_items_by_popularity(popularity: np.ndarray, groups: GroupsConfig) -> tuple[np.ndarray, int]:
    threshold = groups.tail_item_max_popularity
    if threshold is None:
        threshold = _share_threshold(popularity[1:], groups.tail_item_share)
    tail = popularity <= threshold
    tail[0] = False
    return tail, int(threshold)


def _share_threshold(values: np.ndarray, share: float) -> int:
    """The value at the ``share`` quantile: everything at or below it is tail (ties included)."""
    ordered = np.sort(values)
    position = max(int(np.ceil(share * len(ordered))) - 1, 0)
    return int(ordered[position])
