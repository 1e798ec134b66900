"""The two stochastic augmentations of a contrastive view: edge dropping and feature masking.

On the whole graph both draw from torch's global generator on the graph's
device; a mini-batch step passes its own generator (see ``blocks`` for its
edge dropping). Either way the generators are checkpointed, so a seeded run
(and a resumed one, whose generator state is restored) repeats exactly.
"""

from __future__ import annotations

import torch

from .tensors import GraphTensors


def drop_edges(graph: GraphTensors, p: float) -> GraphTensors:
    """Each directed edge kept independently with probability ``1 - p``; node counts unchanged."""
    if p <= 0:
        return graph
    edges = {}
    for rel, (src, dst) in graph.edges.items():
        keep = torch.rand(src.shape[0], device=src.device) >= p
        edges[rel] = (src[keep], dst[keep])
    return GraphTensors(dict(graph.num_nodes), edges)


def feature_masks(
    dims: dict[str, int], p: float, device: torch.device, generator: torch.Generator | None = None
) -> dict[str, torch.Tensor] | None:
    """Per node type, a bool ``[in_t]`` mask of feature columns to zero (each with probability ``p``)."""
    if p <= 0:
        return None
    return {t: torch.rand(d, device=device, generator=generator) < p for t, d in dims.items()}
