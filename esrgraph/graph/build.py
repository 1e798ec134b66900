"""Item metadata -> attribute vocabularies -> :class:`HeteroEdges` -> DGL heterograph.

:func:`build_graph_data` needs no DGL; :func:`to_dgl` imports it when called,
so machines without DGL can still build and read the edge arrays.

Category node identity. On a path, a level is identified by its whole prefix
(``makeup > nails``), not by its bare name: real trees reuse names such as
"accessories" under many parents, and merging those would join unrelated
items. A prefix is carried by every item below it, so a level never has fewer
items than its children and ``min_count`` keeps the kept levels closed under
"parent of": every kept level's parent is kept too. Without paths
(``categories_are_path`` False: so set, or detected as flat tags by the dataset
stage) each category is a node of its own.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..data.metadata import ItemMeta, gc_paused
from ..errors import EsrError
from .config import GraphConfig
from .edges import CATEGORY_RELATIONS, RELATIONS, HeteroEdges
from .normalise import Normaliser
from .prices import assign_buckets, bucket_bounds, bucket_edges, bucket_label, num_buckets, parse_price
from .stats import graph_stats
from .vocab import Assignment, AssignmentBuilder, Linked, Vocabulary, link, single_values

ATTRIBUTES = ("brand", "category", "price")
PATH_SEPARATOR = " > "


def _relation(src: str, dst: str) -> tuple[str, str, str]:
    return next(r for r in RELATIONS if r[0] == src and r[2] == dst)


# The forward (item -> attribute) and reverse relation of each attribute type.
ATTRIBUTE_RELATIONS = {t: (_relation("item", t), _relation(t, "item")) for t in ATTRIBUTES}
UNPARSED_EXAMPLES = 5


@dataclass
class BuiltGraph:
    edges: HeteroEdges
    vocab: dict[str, Vocabulary]  # by attribute node type; node id = position
    price_edges: np.ndarray  # ascending bucket edges of the parsed prices
    stats: dict[str, Any]

    @property
    def num_items(self) -> int:
        return self.edges.num_nodes["item"] - 1


def build_graph_data(
    item_meta: Sequence[ItemMeta | None], cfg: GraphConfig, categories_are_path: bool, source: str = "item metadata"
) -> BuiltGraph:
    """The graph of canonical items 1..N (``item_meta[i - 1]``); item node 0 is padding.

    Raises :class:`EsrError` naming ``source`` when no item keeps any attribute.
    """
    normaliser = Normaliser(cfg.placeholders)
    with gc_paused():  # the per-item passes make no reference cycles
        brands = single_values((m.get("brand") if m else None for m in item_meta), normaliser)
        categories = category_assignment(item_meta, normaliser, cfg, categories_are_path)
        prices, price_edges, price_stats = price_assignment(item_meta, cfg)
        linked = {
            "brand": link(brands, cfg.min_count.brand),
            "category": link(
                categories, cfg.min_count.category, deepest_only=categories_are_path and cfg.category_levels == "leaf"
            ),
            "price": link(prices, cfg.min_count.price, order="given"),
        }
    _add_price_bounds(linked["price"], price_edges)
    hierarchy = categories_are_path and cfg.category_hierarchy
    if hierarchy:
        _add_parents(linked["category"], categories)
    attribute_stats = {t: {**lk.stats, "min_count": getattr(cfg.min_count, t)} for t, lk in linked.items()}
    if not any(len(lk.items) for lk in linked.values()):
        raise NoAttributeError(no_attribute_message(source, len(item_meta), attribute_stats))
    edges = _hetero_edges(len(item_meta), linked, hierarchy)
    stats = graph_stats(edges, attribute_stats, price_stats)
    vocab = {t: lk.vocab for t, lk in linked.items()}
    return BuiltGraph(edges, vocab, price_edges, stats)


class NoAttributeError(EsrError):
    """The metadata give no item a usable attribute, so there is no graph to build (titles-only data)."""


def no_attribute_message(source: str, num_items: int, attribute_stats: dict[str, dict]) -> str:
    parts = []
    for name, s in attribute_stats.items():
        part = f"{name}: {s['items_with_value']:,} items with a value"
        if s["values_dropped"]:
            part += f", {s['values_dropped']:,} values under graph.min_count.{name}={s['min_count']}"
        parts.append(part)
    return (
        f"{source}: no usable attribute; none of the {num_items:,} items keeps a brand, category or price "
        f"after normalisation and min_count ({'; '.join(parts)})"
    )


# ---------------------------------------------------------------- categories


def category_assignment(
    item_meta: Sequence[ItemMeta | None], normaliser: Normaliser, cfg: GraphConfig, as_path: bool
) -> Assignment:
    builder = AssignmentBuilder()
    top, depth = cfg.category_drop_top, cfg.category_max_depth

    def path_group(raw: tuple[str, ...]) -> list[int]:
        levels = normaliser.path(raw)[top:]
        levels = levels[:depth] if depth is not None else levels
        ids, parent = [], -1
        for end in range(1, len(levels) + 1):
            # Identity = the prefix (see the module docstring); a level holding " > " itself may
            # meet another path's prefix of the same text, which then is the same node.
            parent = builder.value_id(PATH_SEPARATOR.join(levels[:end]), parent)
            ids.append(parent)
        return ids

    def set_group(raw: tuple[str, ...]) -> list[int]:
        return sorted({builder.value_id(v) for v in map(normaliser, raw) if v is not None})

    return builder.build(_category_keys(item_meta), path_group if as_path else set_group, with_parents=as_path)


def _category_keys(item_meta: Sequence[ItemMeta | None]) -> Iterator[tuple[str, ...] | None]:
    for meta in item_meta:
        raw = meta.get("categories") if meta else None
        yield tuple(raw) if raw else None


def _add_parents(linked: Linked, categories: Assignment) -> None:
    """Parent node id of each kept category node (-1 at the top).

    A kept level's parent is kept (see the module docstring); only when a level's
    own text holds " > " can its parent be dropped, and then it gets none.
    """
    kept_old = np.flatnonzero(linked.old_to_new >= 0)
    kept_old = kept_old[np.argsort(linked.old_to_new[kept_old])]
    parents_old = categories.parents[kept_old]
    parents = np.where(parents_old >= 0, linked.old_to_new[np.maximum(parents_old, 0)], -1)
    linked.vocab.extra["parents"] = parents.tolist()


# ---------------------------------------------------------------- prices


def price_assignment(item_meta: Sequence[ItemMeta | None], cfg: GraphConfig) -> tuple[Assignment, np.ndarray, dict]:
    """Bucket of every item with a parseable price, plus parse statistics."""
    raws = [meta.get("price") if meta else None for meta in item_meta]
    memo: dict[str | None, float] = {}
    for raw in set(raws):
        if raw is not None:
            price = parse_price(raw)
            memo[raw] = math.nan if price is None else price
    memo[None] = math.nan
    values = np.fromiter((memo[r] for r in raws), dtype=np.float64, count=len(raws))
    values = np.concatenate([[math.nan], values])  # item node 0 is the padding item
    present = len(raws) - raws.count(None)
    examples = sorted((r for r, p in memo.items() if r is not None and math.isnan(p)), key=str)[:UNPARSED_EXAMPLES]
    parsed = ~np.isnan(values)
    edges = bucket_edges(values[parsed], cfg.price_buckets, cfg.price_bucketing)
    buckets = np.full(len(values), -1, dtype=np.int64)
    buckets[parsed] = assign_buckets(values[parsed], edges)
    count = num_buckets(edges)
    assignment = Assignment(
        buckets,
        np.arange(count + 1, dtype=np.int64),
        np.arange(count, dtype=np.int64),
        [bucket_label(*bucket_bounds(edges, k)) for k in range(count)],
    )
    stats = {
        "present": present,
        "parsed": int(parsed.sum()),
        "unparseable": present - int(parsed.sum()),
        "unparseable_examples": [_shorten(e) for e in examples],
        "bucketing": cfg.price_bucketing,
        "buckets": count,
        "edges": [_round(e) for e in edges],
    }
    return assignment, edges, stats


def _add_price_bounds(linked: Linked, edges: np.ndarray) -> None:
    kept = np.flatnonzero(linked.old_to_new >= 0)  # "given" order: node ids follow bucket order
    linked.vocab.extra["buckets"] = kept.tolist()
    linked.vocab.extra["bounds"] = [[_round(x) for x in bucket_bounds(edges, int(k))] for k in kept]


def _round(x: float) -> float:
    return float(f"{x:.6g}") if math.isfinite(x) else x


def _shorten(text: str, limit: int = 40) -> str:
    text = " ".join(str(text).split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


# ---------------------------------------------------------------- edges and DGL


def _hetero_edges(num_items: int, linked: dict[str, Linked], hierarchy: bool) -> HeteroEdges:
    num_nodes = {"item": num_items + 1, **{t: len(lk.vocab) for t, lk in linked.items()}}
    edges = {}
    for node_type, (forward, reverse) in ATTRIBUTE_RELATIONS.items():
        items, nodes = linked[node_type].items, linked[node_type].nodes
        edges[forward] = (items, nodes)
        edges[reverse] = (nodes.copy(), items.copy())
    if hierarchy:
        parents = np.asarray(linked["category"].vocab.extra["parents"], dtype=np.int64)
        children = np.flatnonzero(parents >= 0).astype(np.int64)
        child_of, parent_of = CATEGORY_RELATIONS
        edges[child_of] = (children, parents[children])
        edges[parent_of] = (parents[children].copy(), children.copy())
    return HeteroEdges(num_nodes, edges)


def to_dgl(edges: HeteroEdges):
    """The DGL heterograph of ``edges``; every node carries its own id in ``ndata["id"]``.

    Item node ``i`` is canonical item ``i``, so ``g.nodes["item"].data["id"]``
    indexes the rows of the item embedding matrices (row 0 = padding), and stays
    correct through DGL's subgraph and sampling functions.
    """
    import dgl
    import torch

    data = {rel: (torch.from_numpy(src), torch.from_numpy(dst)) for rel, (src, dst) in edges.edges.items()}
    graph = dgl.heterograph(data, num_nodes_dict=dict(edges.num_nodes), idtype=torch.int64)
    for node_type in graph.ntypes:
        graph.nodes[node_type].data["id"] = torch.arange(graph.num_nodes(node_type), dtype=torch.int64)
    return graph
