"""Settings of the graph stage (`graph:` in YAML)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from ..config_schema import field

DEFAULT_PLACEHOLDERS = ["unknown", "n/a", "na", "none", "null", "nan", "nil", "not available", "not applicable"]


@dataclass
class MinCount:
    """Per attribute type: values carried by fewer items than this get no node."""

    brand: int = field(2, min=1, help="items a brand needs to become a node")
    category: int = field(2, min=1, help="items a category needs (for a path level: items below it)")
    price: int = field(2, min=1, help="items a price bucket needs")


@dataclass
class GraphConfig:
    min_count: MinCount = field(factory=MinCount)
    placeholders: list[str] = field(
        factory=lambda: list(DEFAULT_PLACEHOLDERS),
        help="values that mean 'missing', compared after normalisation; values without a letter or digit always are",
    )
    category_levels: Literal["all", "leaf"] = field(
        "all",
        help="paths: link an item to every level of its path, or only to its most specific kept level",
    )
    category_hierarchy: bool = field(False, help="paths: add child_of / parent_of edges between category levels")
    category_drop_top: int = field(0, min=0, help="paths: levels removed from the top (e.g. a root every item shares)")
    category_max_depth: int | None = field(None, min=1, help="paths: levels kept below the removed ones (null: all)")
    price_buckets: int = field(5, min=1, max=1000, help="number of price buckets")
    price_bucketing: Literal["quantile", "log"] = field(
        "quantile",
        help="quantile: equal item shares; log: equal ratios between min and max price",
    )
