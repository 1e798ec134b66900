"""Building the heterograph from item metadata: properties checked against an independent oracle."""

from collections import Counter

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from esrgraph.config_schema import build as build_config
from esrgraph.errors import EsrError
from esrgraph.graph.build import build_graph_data, to_dgl
from esrgraph.graph.config import GraphConfig
from esrgraph.graph.edges import CATEGORY_RELATIONS, RELATIONS
from esrgraph.graph.normalise import Normaliser
from esrgraph.graph.prices import parse_price

BRANDS = ["OPI", "opi ", "L&#39;Oreal", "L'Oreal", "Dove", "Unknown", "N/A", "Nivea", "ＮＩＶＥＡ", "Olay", "-"]
LEVELS = ["Beauty", "beauty", "Makeup", "Nails", "Accessories", "Hair", "Unknown", "Gift Cards"]
PRICES = st.one_of(
    st.integers(1, 100_000).map(lambda c: f"${c / 100:,.2f}"),
    st.integers(1, 5000).map(lambda c: f"{c / 100:.2f}"),
    st.sampled_from(["$5.00 - $9.99", "garbage", "n/a", "0", "12,99"]),
    st.text(max_size=6),
)
ITEM = st.one_of(
    st.none(),
    st.fixed_dictionaries(
        {
            "title": st.just("t"),
            "brand": st.one_of(st.none(), st.sampled_from(BRANDS)),
            "categories": st.lists(st.sampled_from(LEVELS), max_size=4),
            "price": st.one_of(st.none(), PRICES),
            "description": st.none(),
        }
    ),
)
CONFIG = st.fixed_dictionaries(
    {
        "min_count": st.fixed_dictionaries({t: st.integers(1, 3) for t in ("brand", "category", "price")}),
        "category_levels": st.sampled_from(["all", "leaf"]),
        "category_hierarchy": st.booleans(),
        "category_drop_top": st.integers(0, 1),
        "category_max_depth": st.one_of(st.none(), st.integers(1, 3)),
        "price_buckets": st.integers(1, 6),
        "price_bucketing": st.sampled_from(["quantile", "log"]),
    }
)


def expected_paths(meta, cfg, norm, as_path):
    """The oracle's category values of one item: path prefixes (paths) or a set of names."""
    raw = (meta or {}).get("categories") or []
    if not as_path:
        return sorted({v for v in map(norm, raw) if v is not None})
    levels = []
    for r in raw:
        v = norm(r)
        if v is None:
            break
        if not levels or levels[-1] != v:
            levels.append(v)
    levels = levels[cfg.category_drop_top :]
    if cfg.category_max_depth is not None:
        levels = levels[: cfg.category_max_depth]
    return [" > ".join(levels[:k]) for k in range(1, len(levels) + 1)]


def pairs(edges, relation, vocab_values):
    src, dst = edges.edges[relation]
    return sorted((int(s), vocab_values[int(d)]) for s, d in zip(src, dst))


def check_mirror(edges, forward, reverse):
    fs, fd = edges.edges[forward]
    rs, rd = edges.edges[reverse]
    assert sorted(zip(fs.tolist(), fd.tolist())) == sorted(zip(rd.tolist(), rs.tolist()))


@settings(max_examples=150, deadline=None)
@given(st.lists(ITEM, min_size=1, max_size=40), CONFIG, st.booleans())
def test_edges_match_an_independent_oracle(items, config, as_path):
    cfg = build_config(GraphConfig, config)
    norm = Normaliser(cfg.placeholders)
    try:
        built = build_graph_data(items, cfg, as_path)
    except EsrError as exc:
        assert "no usable attribute" in str(exc)
        return
    edges, vocab = built.edges, built.vocab
    assert edges.num_nodes["item"] == len(items) + 1
    for s, _, d in edges.relations():
        assert s == "item" or d == "item" or (s, d) == ("category", "category")
    hierarchy = set(CATEGORY_RELATIONS) if as_path and cfg.category_hierarchy else set()
    assert set(edges.relations()) == set(RELATIONS) | hierarchy
    for forward, reverse in zip(RELATIONS[::2], RELATIONS[1::2]):
        check_mirror(edges, forward, reverse)
        assert 0 not in edges.edges[forward][0]  # the padding item has no edge

    # brands: one edge per item with a kept brand, none to a dropped one
    brand = [norm((m or {}).get("brand")) for m in items]
    counts = Counter(b for b in brand if b is not None)
    kept = {b for b, c in counts.items() if c >= cfg.min_count.brand}
    assert set(vocab["brand"].values) == kept
    assert pairs(edges, RELATIONS[0], vocab["brand"].values) == sorted(
        (i, b) for i, b in enumerate(brand, 1) if b in kept
    )
    assert [counts[v] for v in vocab["brand"].values] == vocab["brand"].counts.tolist()

    # categories: items carrying each prefix; kept prefixes linked (all levels or the deepest kept)
    paths = [expected_paths(m, cfg, norm, as_path) for m in items]
    counts = Counter(p for path in paths for p in path)
    kept = {p for p, c in counts.items() if c >= cfg.min_count.category}
    assert set(vocab["category"].values) == kept
    leaf = as_path and cfg.category_levels == "leaf"
    want = []
    for i, path in enumerate(paths, 1):
        linked = [p for p in path if p in kept]
        want += [(i, p) for p in (linked[-1:] if leaf else linked)]
    assert pairs(edges, RELATIONS[2], vocab["category"].values) == sorted(want)
    if as_path and cfg.category_hierarchy:
        child_of = pairs(edges, CATEGORY_RELATIONS[0], vocab["category"].values)
        names = vocab["category"].values
        assert sorted((names[c], p) for c, p in child_of) == sorted(
            (v, v.rsplit(" > ", 1)[0]) for v in kept if " > " in v
        )
        check_mirror(edges, *CATEGORY_RELATIONS)

    # prices: one edge per item with a parsed price in a kept bucket; bucket order follows price order
    price = [parse_price((m or {}).get("price")) for m in items]
    src, dst = edges.edges[RELATIONS[4]]
    assert len(set(src.tolist())) == len(src)
    parsed = {i for i, p in enumerate(price, 1) if p is not None}
    if cfg.min_count.price == 1:
        assert set(src.tolist()) == parsed
    assert set(src.tolist()) <= parsed
    assert sorted(Counter(dst.tolist()).values()) == sorted(vocab["price"].counts.tolist())
    assert all(c >= cfg.min_count.price for c in vocab["price"].counts)
    priced = sorted((price[s - 1], d) for s, d in zip(src.tolist(), dst.tolist()))
    assert all(a[1] <= b[1] for a, b in zip(priced, priced[1:]))

    stats = built.stats
    assert stats["edges"] == {r: len(s) for (_, r, _), (s, _) in edges.edges.items()}
    with_any = {int(s) for rel in RELATIONS[::2] for s in edges.edges[rel][0]}
    assert stats["items_without_attribute"] == len(items) - len(with_any)


TINY = [
    {"brand": "OPI", "categories": ["Beauty", "Makeup", "Nails"], "price": "$5.99"},
    {"brand": "opi", "categories": ["Beauty", "Makeup", "Nails"], "price": "$6.49"},
    {"brand": "L&#39;Oreal", "categories": ["Beauty", "Skin Care", "Face"], "price": "12.00"},
    {"brand": "L'Oreal", "categories": ["Beauty", "Skin Care", "Face"], "price": None},
    {"brand": "Unknown", "categories": ["Beauty", "Hair Care", "Accessories"], "price": "$3.00 - $5.00"},
    {"brand": "Dove", "categories": ["Beauty", "Makeup", "Accessories"], "price": "junk"},
    None,
    {"brand": None, "categories": ["Beauty", "Makeup", "Eyes"], "price": "$7.00"},
]


def test_tiny_graph_values_and_node_order():
    built = build_graph_data(TINY, GraphConfig(), True)
    assert built.vocab["brand"].values == ["l'oreal", "opi"]  # by count, then by value
    assert built.vocab["brand"].counts.tolist() == [2, 2]
    cats = built.vocab["category"]
    # "accessories" under hair care and under makeup are different levels, each with one item: dropped
    assert cats.values == [
        "beauty",
        "beauty > makeup",
        "beauty > makeup > nails",
        "beauty > skin care",
        "beauty > skin care > face",
    ]
    assert cats.counts.tolist() == [7, 4, 2, 2, 2]
    s = built.stats
    assert s["attributes"]["brand"] == {
        "values_seen": 3,
        "values_kept": 2,
        "values_dropped": 1,
        "items_with_value": 5,
        "items_linked": 4,
        "min_count": 2,
    }
    assert s["attributes"]["category"]["values_dropped"] == 4
    assert (
        s["prices"]["present"] == 6 and s["prices"]["parsed"] == 5 and s["prices"]["unparseable_examples"] == ["junk"]
    )
    assert s["items_without_attribute"] == 1 and s["coverage"]["brand"] == 0.5
    assert s["edges"]["in_category"] == 7 + 4 + 2 + 2 + 2
    assert built.edges.num_nodes == {"item": 9, "brand": 2, "category": 5, "price": len(built.vocab["price"])}


def test_leaf_level_and_hierarchy():
    cfg = build_config(GraphConfig, {"category_levels": "leaf", "category_hierarchy": True})
    built = build_graph_data(TINY, cfg, True)
    names = built.vocab["category"].values
    src, dst = built.edges.edges[("item", "in_category", "category")]
    linked = {int(s): names[int(d)] for s, d in zip(src, dst)}
    assert linked == {
        1: "beauty > makeup > nails",
        2: "beauty > makeup > nails",
        3: "beauty > skin care > face",
        4: "beauty > skin care > face",
        5: "beauty",
        6: "beauty > makeup",
        8: "beauty > makeup",
    }
    assert built.vocab["category"].counts.tolist() == [7, 4, 2, 2, 2]  # support, not leaf edges
    parents = built.vocab["category"].extra["parents"]
    assert [names[p] if p >= 0 else None for p in parents] == [
        None,
        "beauty",
        "beauty > makeup",
        "beauty",
        "beauty > skin care",
    ]
    assert built.edges.edges[("category", "child_of", "category")][0].tolist() == [1, 2, 3, 4]


def test_drop_top_and_plain_categories():
    cfg = build_config(GraphConfig, {"category_drop_top": 1, "category_max_depth": 1})
    assert build_graph_data(TINY, cfg, True).vocab["category"].values == ["makeup", "skin care"]
    plain = build_graph_data(TINY, GraphConfig(), False).vocab["category"]
    assert dict(zip(plain.values, plain.counts.tolist())) == {
        "beauty": 7,
        "makeup": 4,
        "accessories": 2,
        "nails": 2,
        "skin care": 2,
        "face": 2,
    }


def test_no_usable_attribute_names_the_source():
    items = [
        {"brand": "Unknown", "categories": [], "price": "junk"},
        {"brand": "Solo", "categories": ["Only"], "price": None},
    ]
    with pytest.raises(
        EsrError,
        match=r"^meta\.json: no usable attribute.*brand: 1 items with a value, 1 values under "
        r"graph\.min_count\.brand=2",
    ):
        build_graph_data(items, GraphConfig(), True, source="meta.json")


def test_dgl_graph_matches_the_edge_arrays():
    cfg = build_config(GraphConfig, {"category_hierarchy": True})
    built = build_graph_data(TINY, cfg, True)
    graph = to_dgl(built.edges)
    assert sorted(graph.canonical_etypes) == sorted(built.edges.relations())
    for node_type, count in built.edges.num_nodes.items():
        assert graph.num_nodes(node_type) == count
        assert graph.nodes[node_type].data["id"].tolist() == list(range(count))
    for relation, (src, dst) in built.edges.edges.items():
        got_src, got_dst = graph.edges(etype=relation, order="eid")
        assert np.array_equal(got_src.numpy(), src) and np.array_equal(got_dst.numpy(), dst)
