"""The canonical dataset: contiguous ids, chronological sequences, leave-one-out split, groups.

Items get ids ``1..N`` (0 is padding) and users ``0..U-1``, both in the order
of their source ids (numeric order when every id is an integer). Each user's
last item is the test target, the second-to-last the validation target and the
rest the training sequence.

Cold items (``dataset.cold_items``) come after the interacted ("warm") ones,
ids ``W+1..N``: metadata items nobody interacted with (``keep_unseen``) and,
for the cold-item protocol, a held-out share of interacted items whose every
interaction is removed from the histories (``holdout_share``). Each removed
interaction becomes a cold query: the user, the held-out item, and how many
of the user's remaining items came before it.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..errors import EsrError
from .cold import cold_item_ids, held_out_items, without_held_out
from .config import DatasetConfig, GroupsConfig
from .groups import tail_items_by_popularity, tail_users_by_length
from .interactions import read_interactions
from .keys import check_integer_ids_distinct, check_join_offset, compare_ids_as, join_metadata, sorted_ids
from .metadata import ItemMeta, read_metadata
from .repeats import apply_policy
from .report import summary_stats

log = logging.getLogger(__name__)


@dataclass
class Dataset:
    name: str
    user_ids: list[str]
    item_ids: list[str]  # item_ids[i - 1] is the source id of canonical item i
    offsets: np.ndarray  # int64 [U + 1]; user u's items are items[offsets[u]:offsets[u + 1]]
    items: np.ndarray  # int64 [interactions], canonical item ids
    item_meta: Sequence[ItemMeta | None]  # item_meta[i - 1]; None when the item has no metadata
    item_popularity: np.ndarray  # int64 [N + 1], interactions per item, [0] = 0
    tail_items: np.ndarray  # bool [N + 1], [0] = False
    tail_users: np.ndarray  # bool [U]
    stats: dict[str, Any] = field(default_factory=dict)
    cold_items: np.ndarray | None = None  # bool [N + 1]: items without interactions (the last ids)
    cold_queries: np.ndarray | None = None  # int64 [Q, 3]: user, held-out item, items of the user before it

    def __post_init__(self) -> None:
        if self.cold_items is None:
            self.cold_items = np.zeros(self.num_items + 1, dtype=bool)
        if self.cold_queries is None:
            self.cold_queries = np.zeros((0, 3), dtype=np.int64)

    @property
    def num_warm(self) -> int:
        """Items with interactions: ids 1..num_warm (cold items follow them)."""
        return self.num_items - int(self.cold_items.sum())

    @property
    def num_users(self) -> int:
        return len(self.user_ids)

    @property
    def num_items(self) -> int:
        return len(self.item_ids)

    def sequence(self, user: int) -> np.ndarray:
        return self.items[self.offsets[user] : self.offsets[user + 1]]

    def train_sequence(self, user: int) -> np.ndarray:
        return self.sequence(user)[:-2]

    def valid_target(self, user: int) -> int:
        return int(self.items[self.offsets[user + 1] - 2])

    def test_target(self, user: int) -> int:
        return int(self.items[self.offsets[user + 1] - 1])

    def lengths(self) -> np.ndarray:
        return np.diff(self.offsets)


def from_sequences(
    sequences: list[list[int]] | list[np.ndarray], num_items: int, tail_share: float = 0.8, name: str = "synthetic"
) -> Dataset:
    """A canonical Dataset straight from item-id sequences (ids 1..``num_items``, no metadata), for
    tests and benchmarks; the tail groups take ``tail_share`` of the users and of the items."""
    lengths = np.array([len(s) for s in sequences])
    offsets = np.concatenate([[0], np.cumsum(lengths)])
    items = np.concatenate([np.asarray(s, dtype=np.int64) for s in sequences])
    popularity = np.bincount(items, minlength=num_items + 1)
    groups = GroupsConfig(tail_user_share=tail_share, tail_item_share=tail_share)
    tail_users, _ = tail_users_by_length(lengths - 1, groups)
    tail_items, _ = tail_items_by_popularity(popularity, groups)
    users, item_ids = [str(u) for u in range(len(sequences))], [str(i) for i in range(1, num_items + 1)]
    return Dataset(name, users, item_ids, offsets, items, [None] * num_items, popularity, tail_items, tail_users)


def build_dataset(cfg: DatasetConfig) -> Dataset:
    """Read, join, filter, re-index and split the configured dataset."""
    sequences, reading = read_interactions(cfg.interactions)
    sequences, repeats = apply_policy(sequences, cfg.duplicates)  # before the length filter it may shorten
    records, meta_stats = _read_metadata(cfg)
    category = meta_stats.pop("category_reading")
    total_users = len(sequences)
    kept = {u: s for u, s in sequences.items() if len(s) >= cfg.min_user_interactions}
    if not kept:
        raise EsrError(
            f"{cfg.interactions.path}: no user has at least {cfg.min_user_interactions} interactions "
            f"(dataset.min_user_interactions); {total_users} users were read"
        )
    key_type = compare_ids_as(kept, records, cfg)
    items_read = {item for seq in kept.values() for item in seq}
    if key_type == "int":
        check_integer_ids_distinct(items_read, records, cfg)
    held_out = held_out_items(items_read, cfg)
    kept, queries, dropped = without_held_out(kept, held_out, cfg.min_user_interactions)
    user_ids = sorted_ids(kept.keys())
    warm = sorted_ids({item for seq in kept.values() for item in seq})
    if key_type == "int" and records and cfg.join.check_offset:
        check_join_offset(sorted_ids(items_read), records, cfg)
    cold = cold_item_ids(set(warm), held_out, records, key_type, cfg)
    item_ids = warm + cold
    item_index = {item: i + 1 for i, item in enumerate(item_ids)}
    lengths = np.array([len(kept[u]) for u in user_ids], dtype=np.int64)
    offsets = np.concatenate([[0], np.cumsum(lengths)])
    items = np.fromiter((item_index[i] for u in user_ids for i in kept[u]), dtype=np.int64, count=int(offsets[-1]))
    item_meta, join_stats = join_metadata(item_ids, records, key_type, cfg.join.offset)
    if records and join_stats["items_with_metadata"] == 0:
        log.warning(
            "%s: no interaction item id matches a metadata key (ids compared as %s, offset %d); "
            "check dataset.join and the key field",
            cfg.metadata.path,
            key_type,
            cfg.join.offset,
        )
    popularity = np.bincount(items, minlength=len(item_ids) + 1).astype(np.int64)
    tail_users, user_threshold = tail_users_by_length(lengths - 1, cfg.groups)
    tail_items, item_threshold = tail_items_by_popularity(popularity[: len(warm) + 1], cfg.groups)
    cold_mask = np.zeros(len(item_ids) + 1, dtype=bool)
    cold_mask[len(warm) + 1 :] = True
    tail_items = np.concatenate([tail_items, cold_mask[len(warm) + 1 :]])  # no interaction: tail
    users = {u: k for k, u in enumerate(user_ids)}
    cold_queries = np.array([(users[u], item_index[i], cut) for u, i, cut in queries if u in users], dtype=np.int64)
    ds = Dataset(
        cfg.name,
        user_ids,
        item_ids,
        offsets,
        items,
        item_meta,
        popularity,
        tail_items,
        tail_users,
        cold_items=cold_mask,
        cold_queries=cold_queries.reshape(-1, 3),
    )
    ds.stats = {
        "interaction_format": reading.format,
        "interaction_format_reason": reading.reason,
        "metadata": meta_stats,
        "category_reading": category,
        "users_read": total_users,
        "duplicates": repeats,
        "users_dropped_short": total_users - len(kept) - dropped,
        "join": {"key_type": key_type, "offset": cfg.join.offset, **join_stats},
        "groups": {"tail_user_max_length": user_threshold, "tail_item_max_popularity": item_threshold},
        "cold_items": {
            "items": len(cold),
            "held_out": len(held_out),
            "queries": len(ds.cold_queries),
            "users_dropped_by_holdout": dropped,
        },
    }
    ds.stats.update(summary_stats(ds))
    return ds


def _read_metadata(cfg: DatasetConfig) -> tuple[dict[str, ItemMeta], dict[str, Any]]:
    if cfg.metadata.path:
        return read_metadata(cfg.metadata)
    setting = cfg.metadata.categories_are_path
    reading = {"path": setting is True, "setting": setting, "reason": "no item metadata (dataset.metadata.path)"}
    return {}, {"records": 0, "category_reading": reading}


def categories_are_path(ds: Dataset, setting: bool | str) -> bool:
    """The category reading later stages use: the setting where it is explicit, else what the
    dataset stage detected (recorded in its statistics)."""
    if isinstance(setting, bool):
        return setting
    reading = ds.stats.get("category_reading")
    return bool(reading["path"]) if reading else True  # prepared before detection existed: paths, the old default
