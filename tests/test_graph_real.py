"""Graph statistics on the real datasets against counts made here, straight from the raw files."""

import csv
import html
import json
import re
import unicodedata
from collections import Counter
from pathlib import Path

import numpy as np

from esrgraph.config import load_config
from esrgraph.graph.io import load_sidecar
from esrgraph.pipeline import ensure
from esrgraph.runs import Run
from tests.conftest import SHARED_DATA, needs_shared

CONFIGS = Path(__file__).resolve().parents[1] / "configs"
MISSING = {"unknown", "n/a", "na", "none", "null", "nan", "nil", "not available", "not applicable", ""}


def norm(text):
    text = html.unescape(html.unescape(text or ""))
    text = " ".join(unicodedata.normalize("NFKC", text).casefold().split())
    return None if text in MISSING or not any(c.isalnum() for c in text) else text


def prefixes(levels, drop_top=0):
    path = []
    for level in map(norm, levels):
        if level is None:
            break
        if not path or path[-1] != level:
            path.append(level)
    path = path[drop_top:]
    return [" > ".join(path[:k]) for k in range(1, len(path) + 1)]


def expected(items, prices=None):
    """Graph counts for items ``[(brand, category prefixes)]`` with min_count 2 everywhere."""
    brands = Counter(b for b, _ in items if b)
    categories = Counter(p for _, path in items for p in path)
    kept_brands = {b for b, c in brands.items() if c >= 2}
    kept_categories = {p for p, c in categories.items() if c >= 2}
    has_brand = [b in kept_brands for b, _ in items]
    has_category = [any(p in kept_categories for p in path) for _, path in items]
    has_price = [p is not None for p in prices] if prices is not None else [False] * len(items)
    return {
        "brand_values": len(brands),
        "brand_nodes": len(kept_brands),
        "brand_edges": sum(has_brand),
        "brand_items": sum(b is not None for b, _ in items),
        "category_values": len(categories),
        "category_nodes": len(kept_categories),
        "category_edges": sum(c for p, c in categories.items() if p in kept_categories),
        "category_items": sum(bool(path) for _, path in items),
        "without": sum(not (a or b or c) for a, b, c in zip(has_brand, has_category, has_price)),
        "max_brand_degree": max(c for b, c in brands.items() if b in kept_brands),
    }


def check(stats, want, num_items):
    a = stats["attributes"]
    assert stats["items"] == num_items
    assert (
        a["brand"]["values_seen"],
        stats["nodes"]["brand"],
        stats["edges"]["has_brand"],
        stats["edges"]["brand_of"],
    ) == (want["brand_values"], want["brand_nodes"], want["brand_edges"], want["brand_edges"])
    assert a["brand"]["items_with_value"] == want["brand_items"]
    assert a["brand"]["values_dropped"] == want["brand_values"] - want["brand_nodes"]
    assert stats["degree"]["brand_of"]["max"] == want["max_brand_degree"]
    assert (a["category"]["values_seen"], stats["nodes"]["category"], stats["edges"]["in_category"]) == (
        want["category_values"],
        want["category_nodes"],
        want["category_edges"],
    )
    assert a["category"]["items_with_value"] == want["category_items"]
    assert stats["coverage"]["brand"] == round(want["brand_edges"] / num_items, 4)
    assert stats["items_without_attribute"] == want["without"]


def build(config, tmp_path):
    return load_sidecar(ensure(Run(load_config(CONFIGS / config, [f"run.root={tmp_path}"])), "graph"))


@needs_shared
def test_real_beauty_statistics(tmp_path):
    with open(SHARED_DATA / "amazon-beauty/items.csv", newline="", encoding="utf-8") as handle:
        rows = {int(r["item_id"]): r for r in csv.DictReader(handle)}
    lines = (SHARED_DATA / "amazon-beauty/sequences.txt").read_text().splitlines()
    used = {int(i) for line in lines for i in line.split()[1:]}
    rows = [rows[i] for i in sorted(used)]
    items = [(norm(r["brand"]), prefixes(r["categories"].split("|"))) for r in rows]
    prices = [float(r["price"]) if r["price"].strip() else None for r in rows]
    meta = build("amazon-beauty.yaml", tmp_path)
    stats = meta["stats"]
    check(stats, expected(items, prices), len(rows))
    assert stats["nodes"]["item"] == 12_102
    assert stats["attributes"]["brand"]["items_with_value"] == 10_003 - 20  # 20 brands are "Unknown"

    parsed = np.array([p for p in prices if p is not None])
    assert stats["prices"]["parsed"] == stats["prices"]["present"] == len(parsed) == 11_516
    edges = np.quantile(parsed, np.linspace(0, 1, 6))
    assert np.allclose(meta["price_edges"], edges)
    bucket = np.clip(np.searchsorted(edges, parsed, side="right") - 1, 0, 4)
    assert meta["vocab"]["price"]["counts"] == np.bincount(bucket, minlength=5).tolist()
    assert stats["edges"]["has_price"] == 11_516 and stats["coverage"]["price"] == round(11_516 / 12_101, 4)
    assert "l'oreal paris" in meta["vocab"]["brand"]["values"]
    assert not any("&#" in v or "&amp;" in v for v in meta["vocab"]["brand"]["values"])


@needs_shared
def test_real_scientific_statistics(tmp_path):
    records = json.loads((SHARED_DATA / "amazon-scientific/items.json").read_text())
    users = json.loads((SHARED_DATA / "amazon-scientific/interactions.json").read_text())
    used = sorted({int(i) for seq in users.values() if len(seq) >= 3 for i in seq})
    rows = [records[str(i)] for i in used]
    # a comma followed by a space belongs to a name ("Tapes, Adhesives & Sealants")
    items = [
        (norm(r.get("brand")), prefixes(re.split(r",(?=\S)", r.get("categories") or ""), drop_top=1)) for r in rows
    ]
    meta = build("amazon-scientific.yaml", tmp_path)
    stats = meta["stats"]
    check(stats, expected(items), len(rows))
    assert stats["nodes"]["price"] == 0 and stats["prices"]["present"] == 0
    assert "industrial & scientific" not in meta["vocab"]["category"]["values"]  # the shared root is dropped
    assert "tapes, adhesives & sealants" in meta["vocab"]["category"]["values"]
    tops = Counter(path[0] for _, path in items if path)
    assert {v for v in meta["vocab"]["category"]["values"] if " > " not in v} == {t for t, c in tops.items() if c >= 2}
