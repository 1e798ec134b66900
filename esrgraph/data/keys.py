"""Joining interactions to metadata: how ids compare (integers or strings), a shifted join's check, the join.

Ids are compared as integers when every interaction item id and every
metadata key is one (``dataset.join.key_type: auto``), with an optional
constant offset; a nearby offset that joins clearly more items stops the run,
since 0-based keys against 1-based ids silently pair each item with its
neighbour's record.
"""

from __future__ import annotations

import re

from ..errors import EsrError, InputError
from .config import DatasetConfig
from .files import display_name
from .interactions import Sequences
from .metadata import ItemMeta

_INT = re.compile(r"[+-]?[0-9]+")  # ASCII digits only: int() must accept every id this accepts


def _is_int(text: str) -> bool:
    return _INT.fullmatch(text) is not None


def sorted_ids(ids) -> list[str]:
    ids = list(ids)
    if all(_is_int(i) for i in ids):
        return sorted(ids, key=lambda i: (int(i), i))
    return sorted(ids)


def compare_ids_as(sequences: Sequences, records: dict[str, ItemMeta], cfg: DatasetConfig) -> str:
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


def check_integer_ids_distinct(items: set[str], records: dict[str, ItemMeta], cfg: DatasetConfig) -> None:
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


def join_metadata(item_ids: list[str], records: dict[str, ItemMeta], key_type: str, offset: int):
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
