"""Attribute vocabularies: which values items carry, which values become nodes, and the item edges.

An :class:`Assignment` records, for one attribute type, the values of every
item compactly: each item points at a *group* (the distinct tuple of values it
carries, e.g. one brand, or every level of one category path) and each group
lists its value ids. Real catalogues have far fewer distinct groups than items,
so all per-item work after reading is done with numpy.

:func:`link` applies ``min_count`` and returns a :class:`Vocabulary` (node id
-> value, count) and the item -> node edge arrays.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Iterable
from dataclasses import dataclass, field
from typing import Any

import numpy as np


@dataclass
class Assignment:
    item_group: np.ndarray  # int64 [item nodes]; -1: the item carries no value
    group_offsets: np.ndarray  # int64 [groups + 1]
    group_values: np.ndarray  # int64, value ids of group g at group_values[offsets[g]:offsets[g + 1]]
    values: list[str]  # value id -> normalised value
    parents: np.ndarray | None = None  # value id of the level above (-1 at the top); paths only

    def value_counts(self) -> np.ndarray:
        """Items carrying each value (an item counts once per value)."""
        groups = self.item_group[self.item_group >= 0]
        sizes = np.bincount(groups, minlength=len(self.group_offsets) - 1)
        weights = np.repeat(sizes, np.diff(self.group_offsets))
        return np.bincount(self.group_values, weights=weights, minlength=len(self.values)).astype(np.int64)

    def items_with_value(self) -> int:
        return int((self.item_group[1:] >= 0).sum())


class AssignmentBuilder:
    """Collects the groups of value ids of all items, memoised by a hashable raw key per item."""

    def __init__(self) -> None:
        self.values: list[str] = []
        self.parents: list[int] = []
        self._value_ids: dict[str, int] = {}
        self._group_ids: dict[tuple[int, ...], int] = {}
        self._groups: list[tuple[int, ...]] = []

    def value_id(self, value: str, parent: int = -1) -> int:
        vid = self._value_ids.get(value)
        if vid is None:
            vid = self._value_ids[value] = len(self.values)
            self.values.append(value)
            self.parents.append(parent)
        return vid

    def build(
        self, keys: Iterable[Hashable | None], make_group: Callable[[Any], Iterable[int]], with_parents: bool = False
    ) -> Assignment:
        """The assignment of items 1..N, one raw key each (``None``: no value).

        ``make_group(key)`` gives the value ids of a key; it runs once per
        distinct key, which is what keeps a million items cheap.
        """
        codes = self._codes(keys, make_group)
        lengths = np.fromiter((len(g) for g in self._groups), dtype=np.int64, count=len(self._groups))
        flat = np.fromiter((v for g in self._groups for v in g), dtype=np.int64, count=int(lengths.sum()))
        return Assignment(
            codes,
            np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64),
            flat,
            self.values,
            np.asarray(self.parents, dtype=np.int64) if with_parents else None,
        )

    def _codes(self, keys: Iterable[Hashable | None], make_group: Callable[[Any], Iterable[int]]) -> np.ndarray:
        memo: dict[Hashable, int] = {None: -1}
        codes = [-1]  # item node 0 is the padding item
        append, seen = codes.append, memo.get
        for key in keys:
            code = seen(key)
            if code is None:
                group = tuple(make_group(key))
                code = memo[key] = self._group_id(group) if group else -1
            append(code)
        return np.asarray(codes, dtype=np.int64)

    def _group_id(self, group: tuple[int, ...]) -> int:
        gid = self._group_ids.get(group)
        if gid is None:
            gid = self._group_ids[group] = len(self._groups)
            self._groups.append(group)
        return gid


def single_values(raws: Iterable[Any], normalise: Callable[[Any], str | None]) -> Assignment:
    """One value per item (brands): ``normalise(raw)`` gives the value or ``None``."""
    builder = AssignmentBuilder()

    def make_group(raw: Any) -> tuple[int, ...]:
        value = normalise(raw)
        return () if value is None else (builder.value_id(value),)

    return builder.build(raws, make_group)


@dataclass
class Vocabulary:
    """The kept values of one node type; node id = position."""

    values: list[str]
    counts: np.ndarray  # items carrying each value (what min_count compares against)
    extra: dict[str, list] = field(default_factory=dict)  # e.g. parents of category nodes

    def __len__(self) -> int:
        return len(self.values)

    def to_json(self) -> dict[str, list]:
        return {"values": list(self.values), "counts": self.counts.tolist(), **self.extra}


@dataclass
class Linked:
    vocab: Vocabulary
    items: np.ndarray  # int64, item node of each item -> value edge
    nodes: np.ndarray  # int64, attribute node of each edge
    stats: dict[str, int]
    old_to_new: np.ndarray  # value id -> node id, -1 for dropped values


def link(assignment: Assignment, min_count: int, deepest_only: bool = False, order: str = "count") -> Linked:
    """Drop values carried by fewer than ``min_count`` items and connect items to the rest.

    ``order="count"`` numbers nodes by descending count (ties by value);
    ``order="given"`` keeps the value-id order (price buckets, low to high).
    ``deepest_only`` keeps the last kept value of each group (the most specific
    kept level of a path).
    """
    counts = assignment.value_counts()
    kept = np.flatnonzero(counts >= min_count)
    if order == "count":
        by_count, values = counts.tolist(), assignment.values
        kept = np.array(sorted(kept.tolist(), key=lambda v: (-by_count[v], values[v])), dtype=np.int64)
    old_to_new = np.full(len(assignment.values), -1, dtype=np.int64)
    old_to_new[kept] = np.arange(len(kept))
    offsets, selected = _select(assignment, old_to_new, deepest_only)
    items, nodes = _item_edges(assignment.item_group, offsets, selected)
    vocab = Vocabulary([assignment.values[v] for v in kept], counts[kept])
    stats = {
        "values_seen": len(assignment.values),
        "values_kept": len(kept),
        "values_dropped": len(assignment.values) - len(kept),
        "items_with_value": assignment.items_with_value(),
        "items_linked": int(np.count_nonzero(np.bincount(items, minlength=1))),
    }
    return Linked(vocab, items, nodes, stats, old_to_new)


def _select(assignment: Assignment, old_to_new: np.ndarray, deepest_only: bool) -> tuple[np.ndarray, np.ndarray]:
    """Per group, the node ids of its kept values (CSR offsets and flat node ids)."""
    lengths = np.diff(assignment.group_offsets)
    position_group = np.repeat(np.arange(len(lengths)), lengths)
    keep = old_to_new[assignment.group_values] >= 0
    if deepest_only:
        kept_positions = np.flatnonzero(keep)
        last = np.ones(len(kept_positions), dtype=bool)
        last[:-1] = position_group[kept_positions[:-1]] != position_group[kept_positions[1:]]
        keep = np.zeros_like(keep)
        keep[kept_positions[last]] = True
    selected = old_to_new[assignment.group_values[keep]]
    sizes = np.bincount(position_group[keep], minlength=len(lengths))
    return np.concatenate([[0], np.cumsum(sizes)]).astype(np.int64), selected


def _item_edges(item_group: np.ndarray, offsets: np.ndarray, selected: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    items = np.flatnonzero(item_group >= 0)
    groups = item_group[items]
    sizes = offsets[groups + 1] - offsets[groups]
    src = np.repeat(items, sizes)
    first = np.repeat(offsets[groups], sizes)
    within = np.arange(len(src)) - np.repeat(np.cumsum(sizes) - sizes, sizes)
    return src.astype(np.int64), selected[first + within].astype(np.int64)
