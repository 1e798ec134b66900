"""The relation-aware GAT layer: one attention convolution per relation, combined per node type.

Each convolution is a graph attention layer ("Graph Attention Networks", ICLR
2018) along one relation of the heterograph; merging relations by attention
is the semantic-level attention of "Heterogeneous Graph Attention Network"
(WWW 2019), scored per node.

Every layer takes an ``ops`` object (``NativeOps`` or ``DglOps``, see
``backends.make_ops``) that performs the message passing on one graph, so the
same weights run on either path.
"""

from __future__ import annotations

from collections import Counter

import torch
import torch.nn.functional as F
from torch import nn

from ..graph.edges import Relation


def relation_key(rel: Relation) -> str:
    return ":".join(rel)


class RelationGATConv(nn.Module):
    """Multi-head graph attention along one relation ``src_type -> dst_type``.

    Inputs: ``h_src [Ns, dim]``, ``h_dst [Nd, dim]`` and the relation's edges
    (through ``ops``). Output: ``[Nd, dim]``, the ``heads`` outputs of size
    ``dim / heads`` concatenated; a destination without incoming edges gets
    the bias only.
    """

    def __init__(self, dim: int, heads: int, negative_slope: float = 0.2, attn_drop: float = 0.0):
        super().__init__()
        self.heads, self.head_dim = heads, dim // heads
        self.fc = nn.Linear(dim, dim, bias=False)
        self.attn_src = nn.Parameter(torch.empty(heads, self.head_dim))
        # The destination's projection is used only for its score: fold it into one map dim -> heads.
        self.attn_dst = nn.Linear(dim, heads, bias=False)
        self.bias = nn.Parameter(torch.zeros(dim))
        self.negative_slope = negative_slope
        self.attn_drop = nn.Dropout(attn_drop)
        gain = nn.init.calculate_gain("relu")
        nn.init.xavier_normal_(self.fc.weight, gain=gain)
        nn.init.xavier_normal_(self.attn_src, gain=gain)
        nn.init.xavier_normal_(self.attn_dst.weight, gain=gain)

    def forward(self, ops, rel: Relation, h_src: torch.Tensor, h_dst: torch.Tensor) -> torch.Tensor:
        z = self.fc(h_src).view(-1, self.heads, self.head_dim)  # [Ns, H, F]
        score_src = (z * self.attn_src).sum(-1)  # [Ns, H]
        score_dst = self.attn_dst(h_dst)  # [Nd, H]
        logits = F.leaky_relu(ops.u_add_v(rel, score_src, score_dst), self.negative_slope)  # [E, H]
        attention = self.attn_drop(ops.edge_softmax(rel, logits))
        out = ops.u_mul_e_sum(rel, z, attention)  # [Nd, H, F]
        return out.reshape(h_dst.shape[0], self.heads * self.head_dim) + self.bias


class RelationCombine(nn.Module):
    """Merges the outputs of the relations that end at one node type.

    Input: a list of R tensors ``[N, dim]``; output ``[N, dim]``. ``sum`` and
    ``mean`` have no weights; ``attention`` scores each relation's output per
    node (``q . tanh(W x)``) and takes the softmax-weighted sum over relations.
    """

    def __init__(self, mode: str, dim: int):
        super().__init__()
        self.mode = mode
        if mode == "attention":
            self.project = nn.Linear(dim, dim)
            self.query = nn.Linear(dim, 1, bias=False)

    def forward(self, outputs: list[torch.Tensor]) -> torch.Tensor:
        if len(outputs) == 1:
            return outputs[0]
        if self.mode in ("sum", "mean"):
            total = outputs[0]
            for x in outputs[1:]:
                total = total + x
            return total if self.mode == "sum" else total / len(outputs)
        stacked = torch.stack(outputs, dim=1)  # [N, R, dim]
        weights = torch.softmax(self.query(torch.tanh(self.project(stacked))), dim=1)  # [N, R, 1]
        return (weights * stacked).sum(1)


class HeteroGATLayer(nn.Module):
    """One encoder layer over every relation of the heterograph.

    Input: ``h`` mapping each node type to ``[N_t, dim]``. Output: the same
    shapes, ``LayerNorm(h + ELU(combined relation outputs))`` per node type
    (on a sampled block ``[D_t, dim]``: its output nodes, the first D_t rows);
    with ``targets``, only those node types (the relations ending elsewhere
    are skipped: a last layer need not update nodes nobody reads).
    """

    def __init__(
        self,
        node_types: list[str],
        relations: list[Relation],
        dim: int,
        heads: int,
        combine: str = "mean",
        feat_drop: float = 0.0,
        attn_drop: float = 0.0,
        negative_slope: float = 0.2,
    ):
        super().__init__()
        self.relations = list(relations)
        self.convs = nn.ModuleDict(
            {relation_key(r): RelationGATConv(dim, heads, negative_slope, attn_drop) for r in relations}
        )
        incoming = Counter(r[2] for r in relations)
        # a node type reached by one relation has nothing to weigh: no attention weights for it
        self.combine = nn.ModuleDict(
            {t: RelationCombine(combine if n > 1 else "sum", dim) for t, n in sorted(incoming.items())}
        )
        self.norms = nn.ModuleDict({t: nn.LayerNorm(dim) for t in node_types})
        self.feat_drop = nn.Dropout(feat_drop)

    def forward(self, ops, h: dict[str, torch.Tensor], targets: set[str] | None = None) -> dict[str, torch.Tensor]:
        targets = set(h) if targets is None else targets
        dropped = {t: self.feat_drop(x) for t, x in h.items()}
        incoming: dict[str, list[torch.Tensor]] = {}
        for rel in self.relations:
            src_type, _, dst_type = rel
            if dst_type in targets:
                conv = self.convs[relation_key(rel)]
                h_dst = _first(dropped[dst_type], ops.num_dst(dst_type))
                incoming.setdefault(dst_type, []).append(conv(ops, rel, dropped[src_type], h_dst))
        out = {}
        for t, x in h.items():
            if t in targets:
                x = _first(x, ops.num_dst(t))
                update = self.combine[t](incoming[t]) if t in incoming else torch.zeros_like(x)
                out[t] = self.norms[t](x + F.elu(update))
        return out


def _first(x: torch.Tensor, rows: int) -> torch.Tensor:
    """The first ``rows`` rows: a block's output nodes lead its input nodes. The whole graph is left
    unsliced, so its autograd graph gains no copy."""
    return x if rows == x.shape[0] else x[:rows]
