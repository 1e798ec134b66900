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

import json
import logging
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ..artifacts import atomic_write_bytes, read_json, save_arrays, write_json
from ..errors import EsrError, InputError
from .config import DatasetConfig, GroupsConfig
from .files import display_name
from .interactions import Sequences, read_interactions
from .metadata import ItemMeta, read_metadata

log = logging.getLogger(__name__)


@dataclass
class Dataset:
    name: str
    user_ids: list[str]
    item_ids: list[str]  # item_ids[i - 1] is the source id of canonical item i
    offsets: np.ndarray  # int64 [U + 1]; user u's items are items[offsets[u]:offsets[u + 1]]
    items: np.ndarray  # int64 [interactions], canonical item ids
    item_meta: list[ItemMeta | None]  # item_meta[i - 1]; None when the item has no metadata
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


def build_dataset(cfg: DatasetConfig) -> Dataset:
    """Read, join, filter, re-index and split the configured dataset."""
    sequences, reading = read_interactions(cfg.interactions)
    records, meta_stats = _read_metadata(cfg)
    category = meta_stats.pop("category_reading")
    total_users = len(sequences)
    kept = {u: s for u, s in sequences.items() if len(s) >= cfg.min_user_interactions}
    if not kept:
        raise EsrError(
            f"{cfg.interactions.path}: no user has at least {cfg.min_user_interactions} interactions "
            f"(dataset.min_user_interactions); {total_users} users were read"
        )
    key_type = _key_type(kept, records, cfg)
    items_read = {item for seq in kept.values() for item in seq}
    if key_type == "int":
        _check_integer_ids_distinct(items_read, records, cfg)
    held_out = _held_out_items(items_read, cfg)
    kept, queries, dropped = _without_held_out(kept, held_out, cfg.min_user_interactions)
    user_ids = _sorted_ids(kept.keys())
    warm = _sorted_ids({item for seq in kept.values() for item in seq})
    if key_type == "int" and records and cfg.join.check_offset:
        check_join_offset(_sorted_ids(items_read), records, cfg)
    cold = _cold_item_ids(set(warm), held_out, records, key_type, cfg)
    item_ids = warm + cold
    item_index = {item: i + 1 for i, item in enumerate(item_ids)}
    lengths = np.array([len(kept[u]) for u in user_ids], dtype=np.int64)
    offsets = np.concatenate([[0], np.cumsum(lengths)])
    items = np.fromiter((item_index[i] for u in user_ids for i in kept[u]), dtype=np.int64, count=int(offsets[-1]))
    item_meta, join_stats = _join_metadata(item_ids, records, key_type, cfg.join.offset)
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


def _held_out_items(items: set[str], cfg: DatasetConfig) -> set[str]:
    """The cold-item protocol's held-out items: a seeded share of the interacted items."""
    share = cfg.cold_items.holdout_share
    if share <= 0:
        return set()
    ordered = _sorted_ids(items)
    count = max(1, int(round(share * len(ordered))))
    picked = np.random.default_rng(cfg.cold_items.holdout_seed).choice(len(ordered), count, replace=False)
    return {ordered[i] for i in picked}


def _without_held_out(sequences: Sequences, held_out: set[str], minimum: int):
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


def _cold_item_ids(
    warm: set[str], held_out: set[str], records: dict[str, ItemMeta], key_type: str, cfg: DatasetConfig
) -> list[str]:
    """Cold items in id order: the held-out ones and, with ``keep_unseen``, metadata items nobody interacted with."""
    cold = set(held_out) - warm
    if cfg.cold_items.keep_unseen:
        offset = cfg.join.offset if key_type == "int" else 0
        ids = (str(int(k) - offset) for k in records) if key_type == "int" else iter(records)
        cold |= {i for i in ids if i not in warm}
    return _sorted_ids(cold)


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


def summary_stats(ds: Dataset) -> dict[str, Any]:
    lengths = ds.lengths()
    tail_interactions = ds.tail_items[ds.items].sum()
    return {
        "users": ds.num_users,
        "items": ds.num_items,
        "interactions": int(lengths.sum()),
        "average_length": round(float(lengths.mean()), 3),
        "median_length": float(np.median(lengths)),
        "max_length": int(lengths.max()),
        "tail_user_share": round(float(ds.tail_users.mean()), 4),
        "tail_item_share": round(float(ds.tail_items[1:].mean()), 4),
        "tail_item_interaction_share": round(float(tail_interactions / lengths.sum()), 4),
    }


_INT = re.compile(r"[+-]?[0-9]+")  # ASCII digits only: int() must accept every id this accepts


def _is_int(text: str) -> bool:
    return _INT.fullmatch(text) is not None


def _sorted_ids(ids) -> list[str]:
    ids = list(ids)
    if all(_is_int(i) for i in ids):
        return sorted(ids, key=lambda i: (int(i), i))
    return sorted(ids)


def _key_type(sequences: Sequences, records: dict[str, ItemMeta], cfg: DatasetConfig) -> str:
    join = cfg.join
    if join.key_type != "auto":
        if join.key_type == "int":
            bad = next(((u, i) for u, s in sequences.items() for i in s if not _is_int(i)), None)
            if bad is not None:
                raise EsrError(
                    f"{cfg.interactions.path}: user {bad[0]!r}: item id {bad[1]!r} is not an integer, "
                    "but dataset.join.key_type is int"
                )
            key = next((k for k in records if not _is_int(k)), None)
            if key is not None:
                raise EsrError(
                    f"{cfg.metadata.path}: metadata key {key!r} is not an integer, but dataset.join.key_type is int"
                )
        return join.key_type
    items_int = all(_is_int(i) for s in sequences.values() for i in s)
    keys_int = all(_is_int(k) for k in records)
    if items_int and keys_int:
        return "int"
    if join.offset:
        raise EsrError("dataset.join.offset is set, but the ids are not all integers; set dataset.join.key_type")
    return "str"


def _check_integer_ids_distinct(items: set[str], records: dict[str, ItemMeta], cfg: DatasetConfig) -> None:
    """Ids compared as integers must not name one integer twice ('03' and '3'): the
    items would stay apart yet share one metadata record."""
    for path, ids, what in ((cfg.interactions.path, items, "item ids"), (cfg.metadata.path, records, "metadata keys")):
        pair = _same_integer(ids)
        if pair is not None:
            raise EsrError(
                f"{path}: {what} {pair[0]!r} and {pair[1]!r} are the same integer, and ids are "
                "compared as integers (dataset.join.key_type); write each id one way, or set key_type: str"
            )


def _same_integer(ids) -> tuple[str, str] | None:
    seen: dict[int, str] = {}
    for text in ids:
        other = seen.setdefault(int(text), text)
        if other != text:
            return tuple(sorted((other, text)))
    return None


# Constant offsets compared with the configured one: 0-based against 1-based ids is the usual slip.
OFFSET_WINDOW = 3
# Another offset "matches clearly better" when it joins at least this share of the items more.
OFFSET_MARGIN = 0.05


def check_join_offset(item_ids: list[str], records: dict[str, ItemMeta], cfg: DatasetConfig) -> None:
    """Stop when a nearby constant offset joins clearly more items than the configured one.

    Clearly: it gives every item metadata where the configured offset misses items beyond
    the ends of the metadata's ids (1-based items against 0-based keys leave the last item
    out and pair every other with its neighbour's record), or it joins OFFSET_MARGIN more
    of the items. A gap inside the ids (an item without a record) proves nothing: a shifted
    join may step over it by chance.
    """
    items = [int(i) for i in item_ids]
    keys = {int(k) for k in records}
    configured = cfg.join.offset
    counts = _offset_counts(items, keys, configured)
    best = max((d for d in counts if d != configured), key=lambda d: (counts[d], -abs(d - configured)))
    have, could = counts[configured], counts[best]
    if not _clearly_better(items, keys, configured, have, could):
        return
    raise InputError(
        display_name(cfg.metadata.path),
        f"item ids and metadata keys look shifted: with dataset.join.offset={best}, {could:,} of the {len(items):,} "
        f"interaction items find metadata, with the configured offset {configured}, {have:,} "
        f"(e.g. 1-based ids against 0-based keys pair each item with its neighbour's record); "
        f"set dataset.join.offset={best}, or dataset.join.check_offset=false to keep offset {configured}",
    )


def _offset_counts(items: list[int], keys: set[int], configured: int) -> dict[int, int]:
    """Items that find a key, for each offset near 0 and near the configured one."""
    nearby = {base + step for base in (0, configured) for step in range(-OFFSET_WINDOW, OFFSET_WINDOW + 1)}
    return {d: sum(1 for i in items if i + d in keys) for d in sorted(nearby)}


def _clearly_better(items: list[int], keys: set[int], configured: int, have: int, could: int) -> bool:
    if could - have >= OFFSET_MARGIN * len(items):
        return True
    if could < len(items) or have == could:
        return False
    low, high = min(keys), max(keys)
    return all(not low <= i + configured <= high for i in items if i + configured not in keys)


def _join_metadata(item_ids: list[str], records: dict[str, ItemMeta], key_type: str, offset: int):
    if key_type == "int":
        by_key = {int(k): v for k, v in records.items()}  # _key_type let only integer keys through
        lookup = [by_key.get(int(i) + offset) for i in item_ids]
        used = {int(i) + offset for i in item_ids}
        unused = sum(1 for k in by_key if k not in used)
    else:
        lookup = [records.get(i) for i in item_ids]
        used = set(item_ids)
        unused = sum(1 for k in records if k not in used)
    with_meta = sum(m is not None for m in lookup)
    stats = {
        "items_with_metadata": with_meta,
        "items_without_metadata": len(item_ids) - with_meta,
        "metadata_without_interactions_dropped": unused,
        "coverage": round(with_meta / len(item_ids), 4),
    }
    return lookup, stats


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


# ---------------------------------------------------------------- saving / loading


def save_dataset(ds: Dataset, out_dir: Path) -> None:
    save_arrays(
        out_dir / "dataset.npz",
        offsets=ds.offsets,
        items=ds.items,
        item_popularity=ds.item_popularity,
        tail_items=ds.tail_items,
        tail_users=ds.tail_users,
        cold_items=ds.cold_items,
        cold_queries=ds.cold_queries,
    )
    write_json(out_dir / "ids.json", {"name": ds.name, "users": ds.user_ids, "items": ds.item_ids})
    lines = (json.dumps(m, ensure_ascii=False, sort_keys=True) for m in ds.item_meta)
    atomic_write_bytes(out_dir / "item_meta.jsonl", ("\n".join(lines) + "\n").encode())
    write_json(out_dir / "stats.json", ds.stats)


def load_dataset(stage_dir: Path) -> Dataset:
    try:
        arrays = np.load(stage_dir / "dataset.npz")
        ids = read_json(stage_dir / "ids.json")
        meta_text = (stage_dir / "item_meta.jsonl").read_text(encoding="utf-8")
        stats = read_json(stage_dir / "stats.json")
    except (OSError, ValueError) as exc:
        raise InputError(stage_dir, f"cannot load the prepared dataset ({exc}); run it again with --force") from None
    item_meta = [json.loads(line) for line in meta_text.splitlines()]
    return Dataset(
        ids["name"],
        ids["users"],
        ids["items"],
        arrays["offsets"],
        arrays["items"],
        item_meta,
        arrays["item_popularity"],
        arrays["tail_items"],
        arrays["tail_users"],
        stats,
        arrays["cold_items"] if "cold_items" in arrays else None,  # prepared before cold items existed: none
        arrays["cold_queries"] if "cold_queries" in arrays else None,
    )


def describe(stats: dict[str, Any]) -> str:
    """Human-readable dataset statistics."""
    join, groups = stats["join"], stats["groups"]
    lines = [
        *_reading_lines(stats),
        f"users            {stats['users']:>10,}   (read {stats['users_read']:,}; "
        f"dropped {stats['users_dropped_short']:,} with too few interactions)",
        f"items            {stats['items']:>10,}",
        f"interactions     {stats['interactions']:>10,}",
        f"average length   {stats['average_length']:>10.2f}   "
        f"(median {stats['median_length']:g}, max {stats['max_length']:,})",
        f"metadata join    {join['items_with_metadata']:>10,} items with metadata ({join['coverage']:.1%}); "
        f"{join['items_without_metadata']:,} without (kept); {join['metadata_without_interactions_dropped']:,} "
        f"records of items nobody interacted with (dropped); ids compared as {join['key_type']}"
        + (
            f"; {repeats:,} repeated records (the first kept)"
            if (repeats := stats["metadata"].get("duplicate_keys"))
            else ""
        ),
        f"tail users       {stats['tail_user_share']:>10.1%}   "
        f"(history before test <= {groups['tail_user_max_length']})",
        f"tail items       {stats['tail_item_share']:>10.1%}   (popularity <= {groups['tail_item_max_popularity']}; "
        f"{stats['tail_item_interaction_share']:.1%} of interactions)",
        *_cold_lines(stats.get("cold_items")),
    ]
    return "\n".join(lines)


def _cold_lines(cold: dict | None) -> list[str]:
    if not cold or not cold["items"]:
        return []
    held = (
        (
            f"; {cold['held_out']:,} held out for the cold-item protocol, {cold['queries']:,} interactions "
            f"to rank, {cold['users_dropped_by_holdout']:,} users left with too few"
        )
        if cold["held_out"]
        else ""
    )
    return [f"cold items       {cold['items']:>10,}   (no interaction in the histories{held})"]


def _reading_lines(stats: dict[str, Any]) -> list[str]:
    """How the files were read: formats (and what a guess rested on), absent fields, categories."""
    meta = stats["metadata"]
    lines = []
    if "interaction_format_reason" in stats:  # statistics of older runs lack the readings
        lines.append(f"interactions     read as {stats['interaction_format']} ({stats['interaction_format_reason']})")
    if "format_reason" in meta:
        lines.append(f"metadata         read as {meta['format']} ({meta['format_reason']})")
    if meta.get("fields_absent"):
        absent = ", ".join(meta["fields_absent"])
        lines.append(f"fields absent    {absent} (no record has them: missing for every item)")
    if "category_reading" in stats and meta.get("records"):
        reading = stats["category_reading"]
        lines.append(f"categories       {'paths' if reading['path'] else 'flat tags'} ({reading['reason']})")
    return lines
