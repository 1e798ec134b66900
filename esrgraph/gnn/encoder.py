"""The L-layer relation-aware GAT encoder and its input features.

Runs without DGL: it takes a :class:`GraphTensors` (edge-index tensors) and a
backend name and returns one embedding per node; only the ``dgl`` backend
imports DGL, and only when it is used.
"""

from __future__ import annotations

import torch
from torch import nn

from ..graph.edges import Relation
from .backends import make_ops
from .blocks import Block
from .layers import HeteroGATLayer
from .tensors import GraphTensors

ITEM = "item"


class NodeInputs(nn.Module):
    """The first representation of every node.

    ``features`` maps a node type to fixed input features ``[N_t, in_t]``
    (e.g. the LLM item embeddings, or attribute value encodings); these go
    through a linear map ``in_t -> dim``. Every other type gets a learned
    embedding ``[N_t, dim]``. ``masks`` (optional, per type, bool ``[in_t]``
    or ``[dim]``) zero whole feature columns: the feature-masking augmentation.
    Output: type -> ``[N_t, dim]``; with ``nodes`` (type -> int64 ids ``[S_t]``,
    a mini-batch's input nodes) type -> ``[S_t, dim]``, computed for those
    rows only, and the learned embeddings get sparse gradients (those rows
    only), so that an optimiser for sparse gradients steps in the size of the
    batch, not of the tables.
    """

    def __init__(self, num_nodes: dict[str, int], dim: int, features: dict[str, torch.Tensor] | None = None):
        super().__init__()
        features = features or {}
        self.types = list(num_nodes)
        self.projections = nn.ModuleDict()
        self.embeddings = nn.ModuleDict()
        for t, n in num_nodes.items():
            if t in features:
                x = features[t].float()
                if x.shape[0] != n:
                    raise ValueError(
                        f"input features of node type {t!r} have {x.shape[0]} rows, the graph has {n} nodes"
                    )
                self.register_buffer(f"features_{t}", x, persistent=False)
                self.projections[t] = nn.Linear(x.shape[1], dim)
            else:
                self.embeddings[t] = nn.Embedding(n, dim)
                nn.init.normal_(self.embeddings[t].weight, std=dim**-0.5)

    def input_dims(self) -> dict[str, int]:
        return {
            t: (getattr(self, f"features_{t}").shape[1] if t in self.projections else self.embeddings[t].embedding_dim)
            for t in self.types
        }

    def forward(
        self, masks: dict[str, torch.Tensor] | None = None, nodes: dict[str, torch.Tensor] | None = None
    ) -> dict[str, torch.Tensor]:
        out = {}
        for t in self.types:
            keep = None if masks is None or t not in masks else (~masks[t]).to(torch.float32)
            rows = None if nodes is None else nodes[t]
            if t in self.projections:
                # Zeroing input columns equals zeroing the matching weight columns, without a masked
                # copy of the [N_t, in_t] features per view (1.5 GB for LLM inputs at a million items).
                proj = self.projections[t]
                weight = proj.weight if keep is None else proj.weight * keep
                x = getattr(self, f"features_{t}")
                x = x if rows is None else x.index_select(0, rows)
                out[t] = torch.nn.functional.linear(x, weight, proj.bias)
            else:
                table = self.embeddings[t].weight
                x = table if rows is None else torch.nn.functional.embedding(rows, table, sparse=True)
                out[t] = x if keep is None else x * keep
        return out


class GraphEncoder(nn.Module):
    """Input features followed by ``layers`` :class:`HeteroGATLayer` s.

    ``forward(graph, masks, outputs)`` takes a :class:`GraphTensors` (any
    subset of the edges it was built for, e.g. an edge-dropped view) and
    returns type -> ``[N_t, dim]`` for the node types in ``outputs`` (all when
    None); :meth:`items` returns the item rows ``[N_item, dim]`` only.
    """

    def __init__(
        self,
        num_nodes: dict[str, int],
        relations: list[Relation],
        dim: int = 64,
        layers: int = 2,
        heads: int = 4,
        combine: str = "mean",
        feat_drop: float = 0.0,
        attn_drop: float = 0.0,
        negative_slope: float = 0.2,
        features: dict[str, torch.Tensor] | None = None,
        backend: str = "native",
    ):
        super().__init__()
        self.backend = backend
        self.dim = dim
        self.inputs = NodeInputs(num_nodes, dim, features)
        self.layers = nn.ModuleList(
            HeteroGATLayer(list(num_nodes), relations, dim, heads, combine, feat_drop, attn_drop, negative_slope)
            for _ in range(layers)
        )

    def forward(
        self, graph: GraphTensors, masks: dict[str, torch.Tensor] | None = None, outputs: set[str] | None = None
    ) -> dict[str, torch.Tensor]:
        ops = make_ops(self.backend, graph)
        h = self.inputs(masks)
        for i, layer in enumerate(self.layers):
            h = layer(ops, h, outputs if i == len(self.layers) - 1 else None)
        return h

    def items(self, graph: GraphTensors, masks: dict[str, torch.Tensor] | None = None) -> torch.Tensor:
        return self(graph, masks, {ITEM})[ITEM]

    def forward_blocks(
        self, blocks: list[Block], masks: dict[str, torch.Tensor] | None = None, outputs: set[str] | None = None
    ) -> dict[str, torch.Tensor]:
        """The encoder on a sampled neighbourhood: layer ``i`` runs on ``blocks[i]``.

        Only ``blocks[0]``'s input nodes get input features, and each layer
        updates only its block's output nodes. Returns type -> ``[D_t, dim]``
        for the last block's output nodes (the seeds), for the types in
        ``outputs`` (all when None).
        """
        if len(blocks) != len(self.layers):
            raise ValueError(f"{len(blocks)} blocks for {len(self.layers)} layers")
        h = self.inputs(masks, blocks[0].src_nodes)
        for i, (layer, block) in enumerate(zip(self.layers, blocks)):
            h = layer(make_ops(self.backend, block), h, outputs if i == len(self.layers) - 1 else None)
        return h


class ProjectionHead(nn.Module):
    """Two-layer MLP ``[N, dim] -> [N, dim]`` (hidden ``hidden``) applied before the contrastive loss."""

    def __init__(self, dim: int, hidden: int):
        super().__init__()
        self.fc1, self.fc2 = nn.Linear(dim, hidden), nn.Linear(hidden, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(torch.nn.functional.elu(self.fc1(x)))


@torch.no_grad()
def item_embeddings(encoder: GraphEncoder, graph: GraphTensors) -> torch.Tensor:
    """Eval-mode item embeddings on the un-augmented graph ``[N_item, dim]``, row 0 (padding) zeroed."""
    was_training = encoder.training
    encoder.eval()
    try:
        out = encoder.items(graph).clone()
    finally:
        encoder.train(was_training)
    out[0] = 0
    return out
