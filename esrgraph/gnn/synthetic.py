"""Generated item-attribute graphs of any size, shaped like real catalogues (for benchmarks and tests).

Brand and category popularity follow a Zipf law (a few huge brands, a long
tail of small ones); categories form a three-level path (leaf, parent,
top level) and each categorised item links to all three levels; prices fall
into 5 equally filled buckets. Item node 0 is padding and has no edges.
"""

from __future__ import annotations

import numpy as np

from ..graph.edges import HeteroEdges


def zipf_choice(rng: np.random.Generator, n_values: int, size: int, exponent: float = 1.0) -> np.ndarray:
    """``size`` draws from ``0..n_values-1`` with probability proportional to ``1 / (rank + 1) ** exponent``."""
    weights = 1.0 / np.arange(1, n_values + 1) ** exponent
    return rng.choice(n_values, size=size, p=weights / weights.sum())


def synthetic_edges(
    num_items: int,
    seed: int = 0,
    brands_per_item: float = 0.17,
    brand_coverage: float = 0.83,
    leaf_categories_per_item: float = 0.02,
    category_coverage: float = 0.99,
    price_buckets: int = 5,
    price_coverage: float = 0.95,
) -> HeteroEdges:
    """A :class:`HeteroEdges` with ``num_items`` items (nodes 1..num_items), defaults shaped like amazon-beauty."""
    rng = np.random.default_rng(seed)
    items = np.arange(1, num_items + 1, dtype=np.int64)
    n_brands = max(1, round(brands_per_item * num_items))
    n_leaves = max(8, round(leaf_categories_per_item * num_items))
    n_parents, n_tops = -(-n_leaves // 8), -(-n_leaves // 64)

    def covered(share: float) -> np.ndarray:
        return items[rng.random(num_items) < share]

    with_brand = covered(brand_coverage)
    brand = zipf_choice(rng, n_brands, len(with_brand))
    with_category = covered(category_coverage)
    leaf = zipf_choice(rng, n_leaves, len(with_category))
    cat_items = np.concatenate([with_category] * 3)
    categories = np.concatenate([leaf, n_leaves + leaf // 8, n_leaves + n_parents + leaf // 64])
    with_price = covered(price_coverage)
    price = rng.integers(0, price_buckets, len(with_price))
    edges = {}
    for (attr, forward, backward), (src, dst) in {
        ("brand", "has_brand", "brand_of"): (with_brand, brand),
        ("category", "in_category", "category_of"): (cat_items, categories),
        ("price", "has_price", "price_of"): (with_price, price),
    }.items():
        edges[("item", forward, attr)] = (src.astype(np.int64), dst.astype(np.int64))
        edges[(attr, backward, "item")] = (dst.astype(np.int64), src.astype(np.int64))
    num_nodes = {
        "item": num_items + 1,
        "brand": n_brands,
        "category": n_leaves + n_parents + n_tops,
        "price": price_buckets,
    }
    return HeteroEdges(num_nodes, edges)
