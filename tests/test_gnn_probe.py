"""The neighbour-agreement probe on hand-made graphs and embeddings."""

import numpy as np

from esrgraph.gnn.probe import chance_agreement, describe, item_labels, neighbour_agreement
from esrgraph.graph.edges import HeteroEdges


def test_labels_are_the_brand_and_the_most_specific_category():
    # categories: 0 = top level (all items), 1 = "a" (items 1-3), 2 = "a > x" (items 1-2); item 4 has none
    cat_src = np.array([1, 1, 1, 2, 2, 2, 3, 3, 5])
    cat_dst = np.array([0, 1, 2, 2, 0, 1, 0, 1, 0])
    edges = HeteroEdges(
        {"item": 6, "category": 3, "brand": 2},
        {
            ("item", "in_category", "category"): (cat_src, cat_dst),
            ("item", "has_brand", "brand"): (np.array([2, 3]), np.array([1, 0])),
        },
    )
    labels = item_labels(edges)
    assert labels["category"].tolist() == [-1, 2, 2, 1, -1, 0]
    assert labels["brand"].tolist() == [-1, -1, 1, 0, -1, -1]


def test_neighbour_agreement_and_chance():
    label = np.array([-1, 0, 0, 0, 1, 1, 1])
    clustered = np.array([[0, 0], [1, 0], [1, 0.1], [1, -0.1], [-1, 0], [-1, 0.1], [-1, -0.1]])
    assert neighbour_agreement(clustered, label, k=2) == 1.0
    mixed = np.array([[0, 0], [1, 0], [-1, 0], [1, 0.1], [-1, 0.1], [1, -0.1], [-1, -0.1]])
    assert neighbour_agreement(mixed, np.array([-1, 0, 0, 0, 1, 1, 1]), k=2) < 0.5
    assert chance_agreement(label) == 2 * (3 * 2) / (6 * 5)
    assert np.isnan(neighbour_agreement(clustered, label, k=6))  # fewer labelled items than k + 1


def test_describe_lists_every_row():
    text = describe(
        {
            "k": 10,
            "chance": {"category": 0.01},
            "rows": {"untrained encoder": {"category": 0.2}, "trained encoder": {"category": 0.3}},
        }
    )
    assert "category@10" in text and "untrained encoder" in text and "0.300" in text and "chance" in text
