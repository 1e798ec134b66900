"""A quick quality probe of item embeddings: do an item's nearest neighbours share its attributes?

For each attribute (category, brand) an item gets one label: its brand, or
its most specific category (of the categories the item is linked to, the one
with the fewest items: the leaf when categories are a path). The score is the
share of an item's ``k`` nearest labelled items (cosine) that carry the same
label, averaged over (up to ``max_queries``) labelled items. ``chance`` is the
same share for neighbours drawn at random. Printed before and after training,
it shows whether pretraining learned anything.
"""

from __future__ import annotations

import numpy as np
import torch

from ..graph.edges import HeteroEdges

ATTRIBUTES = (("category", "in_category"), ("brand", "has_brand"))


def item_labels(edges: HeteroEdges) -> dict[str, np.ndarray]:
    """attribute -> int64 ``[N_item]`` label per item node (-1: none)."""
    n_items = edges.num_nodes["item"]
    labels = {}
    for node_type, relation in ATTRIBUTES:
        rel = ("item", relation, node_type)
        if rel not in edges.edges or len(edges.edges[rel][0]) == 0:
            continue
        src, dst = (np.asarray(a, dtype=np.int64) for a in edges.edges[rel])
        size = np.bincount(dst, minlength=edges.num_nodes[node_type])
        # Sort each item's attributes by (item, size, id): the first per item is its most specific one.
        order = np.lexsort((dst, size[dst], src))
        first = np.ones(len(order), dtype=bool)
        first[1:] = src[order][1:] != src[order][:-1]
        label = np.full(n_items, -1, dtype=np.int64)
        label[src[order][first]] = dst[order][first]
        labels[node_type] = label
    return labels


def chance_agreement(label: np.ndarray) -> float:
    """Probability that two distinct random labelled items share a label."""
    counts = np.bincount(label[label >= 0]).astype(np.float64)
    total = counts.sum()
    return float((counts * (counts - 1)).sum() / (total * (total - 1))) if total > 1 else 0.0


def neighbour_agreement(
    emb: np.ndarray | torch.Tensor,
    label: np.ndarray,
    k: int = 10,
    max_queries: int = 5000,
    seed: int = 0,
    block: int = 1024,
) -> float:
    """Mean share of each query item's ``k`` nearest labelled items (cosine) with its label."""
    labelled = np.flatnonzero(label >= 0)
    if len(labelled) <= k:
        return float("nan")
    x = torch.nn.functional.normalize(torch.as_tensor(np.asarray(emb)[labelled], dtype=torch.float32), dim=1)
    y = torch.as_tensor(label[labelled])
    rng = np.random.default_rng(seed)
    queries = np.sort(rng.choice(len(labelled), size=min(max_queries, len(labelled)), replace=False))
    hits = 0
    for start in range(0, len(queries), block):
        rows = torch.as_tensor(queries[start : start + block])
        sims = x[rows] @ x.T
        sims[torch.arange(len(rows)), rows] = float("-inf")  # an item is not its own neighbour
        nearest = sims.topk(k, dim=1).indices
        hits += int((y[nearest] == y[rows].unsqueeze(1)).sum())
    return hits / (len(queries) * k)


def probe(emb: np.ndarray | torch.Tensor, labels: dict[str, np.ndarray], k: int = 10) -> dict[str, float]:
    """attribute -> neighbour agreement of ``emb [N_item, d]`` (row 0, the padding item, is never labelled)."""
    return {name: round(neighbour_agreement(emb, label, k), 4) for name, label in labels.items()}


def describe(report: dict) -> str:
    """Table of a probe report ``{"k", "chance", "rows": {name: {attribute: score}}}``."""
    attributes = list(report["chance"])
    k = report["k"]
    title = "share of neighbours with the same"
    head = f"{title:<38}" + "".join(f"{a + '@' + str(k):>14}" for a in attributes)
    lines = [head]
    for name, scores in list(report["rows"].items()) + [("random neighbours (chance)", report["chance"])]:
        lines.append(f"{name:<38}" + "".join(f"{scores.get(a, float('nan')):>14.3f}" for a in attributes))
    return "\n".join(lines)
