"""Statistics of a built graph and their human-readable form.

:func:`graph_stats` counts nodes per type, edges per relation, attribute
coverage (share of items 1..N with at least one brand / category / price
edge), items with no attribute edge at all, and a degree summary per relation
(over the relation's source nodes; for item sources, items 1..N without the
padding node). The per-attribute counts from vocabulary building (values seen,
kept, dropped under ``min_count``) and the price parse counts are passed in and
kept as they are. :func:`describe` prints them.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from .edges import HeteroEdges


def graph_stats(edges: HeteroEdges, attributes: dict[str, dict], prices: dict[str, Any]) -> dict[str, Any]:
    num_items = edges.num_nodes["item"] - 1
    items_with: dict[str, int] = {}
    any_attribute = np.zeros(num_items + 1, dtype=bool)
    degree = {}
    for (src_type, relation, dst_type), (src, _) in edges.edges.items():
        counts = np.bincount(src, minlength=edges.num_nodes[src_type])
        if src_type == "item":
            counts = counts[1:]
            linked = np.zeros(num_items + 1, dtype=bool)
            linked[src] = True
            items_with[dst_type] = int(linked.sum())
            any_attribute |= linked
        degree[relation] = _summary(counts)
    return {
        "items": num_items,
        "nodes": dict(edges.num_nodes),
        "edges": {relation: int(len(src)) for (_, relation, _), (src, _) in edges.edges.items()},
        "relations": [list(r) for r in edges.relations()],
        "items_with": items_with,
        "coverage": {t: round(n / num_items, 4) if num_items else 0.0 for t, n in items_with.items()},
        "items_without_attribute": int(num_items - any_attribute[1:].sum()),
        "attributes": attributes,
        "prices": prices,
        "degree": degree,
    }


def _summary(counts: np.ndarray) -> dict[str, float]:
    if counts.size == 0:
        return {"min": 0, "median": 0.0, "mean": 0.0, "max": 0}
    return {
        "min": int(counts.min()),
        "median": float(np.median(counts)),
        "mean": round(float(counts.mean()), 3),
        "max": int(counts.max()),
    }


def describe(stats: dict[str, Any]) -> str:
    """Human-readable graph statistics."""
    items = stats["items"]
    nodes = stats["nodes"]
    lines = [
        f"items              {items:>10,}   (item nodes {nodes['item']:,}: node 0 is padding)",
        "nodes              " + "   ".join(f"{t} {n:,}" for t, n in nodes.items() if t != "item"),
        "",
        f"{'attribute':<12}{'values':>10}{'kept':>9}{'dropped':>9}{'min_count':>11}{'items w/ value':>16}"
        f"{'items linked':>14}{'coverage':>10}",
    ]
    for name, a in stats["attributes"].items():
        lines.append(
            f"{name:<12}{a['values_seen']:>10,}{a['values_kept']:>9,}{a['values_dropped']:>9,}{a['min_count']:>11}"
            f"{a['items_with_value']:>16,}{a['items_linked']:>14,}{stats['coverage'].get(name, 0.0):>10.1%}"
        )
    without = stats["items_without_attribute"]
    lines.append(f"items with no attribute: {without:,} ({without / items:.1%})" if items else "items: none")
    lines += ["", _describe_prices(stats["prices"]), ""]
    lines.append(f"{'relation':<24}{'edges':>10}   degree of the source nodes: min / median / mean / max")
    for src_type, relation, dst_type in map(tuple, stats["relations"]):
        d = stats["degree"][relation]
        lines.append(
            f"{src_type + ' ' + relation:<24}{stats['edges'][relation]:>10,}   "
            f"{d['min']:,} / {d['median']:,g} / {d['mean']:,.2f} / {d['max']:,}  (-> {dst_type})"
        )
    return "\n".join(lines)


def _describe_prices(p: dict[str, Any]) -> str:
    if not p["present"]:
        return "prices: none in the metadata"
    text = f"prices: {p['present']:,} present, {p['parsed']:,} parsed, {p['unparseable']:,} unparseable"
    if p["unparseable_examples"]:
        text += " (e.g. " + ", ".join(repr(e) for e in p["unparseable_examples"][:3]) + ")"
    if p["buckets"]:
        text += f"\n        {p['buckets']} {p['bucketing']} buckets, edges " + " / ".join(f"{e:g}" for e in p["edges"])
    return text
