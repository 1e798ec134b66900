"""Sampled neighbourhoods as message-flow blocks, drawn in plain PyTorch; their edge-dropped views.

A mini-batch step encodes only the nodes its seed items need: for ``L``
layers, ``L`` blocks. ``blocks[-1]`` has the seeds as its output nodes and
their sampled in-neighbours (and the seeds themselves) as its input nodes;
each earlier block's output nodes are the next block's input nodes, so
``blocks[0]``'s input nodes are the only ones whose features enter the step.
This is DGL's message-flow-graph layout (``dgl.dataloading``), and
:class:`NativeSampler` draws the same neighbourhoods as DGL's
``NeighborSampler`` without DGL: every output node keeps, per relation,
``fanout`` of its in-edges drawn uniformly without replacement (all of
them when it has no more, or when the fan-out is -1).

Everything here costs memory in the size of the batch's neighbourhood, never
in the size of the graph, apart from the per-relation in-edge index that a
:class:`NativeSampler` builds once.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from ..graph.edges import Relation
from .tensors import GraphTensors

ALL = -1  # fan-out: every in-neighbour


@dataclass
class Block:
    """One layer's message-flow graph.

    ``src_nodes``: node type -> int64 ``[S_t]``, the global ids of the layer's
    input nodes; its first ``num_dst[t]`` entries are the layer's output
    nodes, in order. ``edges``: relation -> (``src [E]``, ``dst [E]``), local
    indices into the source type's input nodes and the destination type's
    output nodes. ``edge_ids``: relation -> ``[E]``, each edge's id among
    the whole graph's edges of that relation. Every relation of the graph is
    present (some with no edges).
    """

    src_nodes: dict[str, torch.Tensor]
    num_dst: dict[str, int]
    edges: dict[Relation, tuple[torch.Tensor, torch.Tensor]]
    edge_ids: dict[Relation, torch.Tensor]

    @property
    def num_nodes(self) -> dict[str, int]:
        """Input nodes per type (the sources of message passing, as ``GraphTensors.num_nodes``)."""
        return {t: int(ids.numel()) for t, ids in self.src_nodes.items()}

    def num_dst_nodes(self, node_type: str) -> int:
        return self.num_dst.get(node_type, 0)

    def dst_nodes(self, node_type: str) -> torch.Tensor:
        return self.src_nodes[node_type][: self.num_dst_nodes(node_type)]

    def num_edges(self) -> int:
        return sum(int(src.numel()) for src, _ in self.edges.values())

    def keep_edges(self, keep: dict[Relation, torch.Tensor]) -> Block:
        """The same nodes with only the edges where ``keep[rel]`` (bool ``[E]``) is true."""
        edges = {rel: (src[keep[rel]], dst[keep[rel]]) for rel, (src, dst) in self.edges.items()}
        ids = {rel: ids[keep[rel]] for rel, ids in self.edge_ids.items()}
        return Block(self.src_nodes, self.num_dst, edges, ids)


def layer_fanouts(fanouts: list[int] | None, layers: int) -> list[int]:
    """Per-layer fan-outs from the input layer to the output layer: null -> all; one entry -> every layer."""
    if not fanouts:
        return [ALL] * layers
    values = list(fanouts)  # the config allows counts and ALL (-1) only
    return values * layers if len(values) == 1 else values


def drop_block_edges(blocks: list[Block], p: float, generator: torch.Generator) -> list[Block]:
    """One augmented view of a sampled subgraph: each sampled edge kept with probability ``1 - p``.

    An edge sampled into several layers is kept or dropped in all of them
    alike, so the view is a subgraph of the sample, as a dropped full graph
    is a subgraph of the graph.
    """
    if p <= 0:
        return blocks
    keeps: list[dict[Relation, torch.Tensor]] = [{} for _ in blocks]
    for rel in blocks[0].edge_ids:
        ids = torch.cat([block.edge_ids[rel] for block in blocks])
        unique, inverse = torch.unique(ids, return_inverse=True)
        kept = (torch.rand(unique.numel(), generator=generator, device=ids.device) >= p)[inverse]
        for keep, part in zip(keeps, kept.split([block.edge_ids[rel].numel() for block in blocks])):
            keep[rel] = part
    return [block.keep_edges(keep) for block, keep in zip(blocks, keeps)]


def random_subsets(degree: torch.Tensor, k: int, generator: torch.Generator) -> torch.Tensor:
    """Per row a uniform random ``k``-subset of ``range(degree[i])`` (every ``degree >= k``) -> ``[n, k]``.

    Floyd's algorithm with its ``k`` steps vectorised over the rows: memory
    and time O(n k^2), whatever the degrees (hubs with a million in-edges
    cost what a node with ``k + 1`` does).
    """
    n = degree.numel()
    out = torch.empty(n, k, dtype=torch.int64, device=degree.device)
    for j in range(k):
        top = degree - k + j  # this step draws from 0..top
        draw = torch.rand(n, dtype=torch.float64, generator=generator, device=degree.device)
        pick = torch.minimum((draw * (top + 1)).long(), top)
        taken = (out[:, :j] == pick.unsqueeze(1)).any(1)
        out[:, j] = torch.where(taken, top, pick)
    return out


def _local_index(nodes: torch.Tensor, ids: torch.Tensor) -> torch.Tensor:
    """Position of each of ``ids`` in ``nodes`` (every id is there): sorting, no table over the graph."""
    ordered, position = torch.sort(nodes)
    return position[torch.searchsorted(ordered, ids)]


def _with_new(first: torch.Tensor, candidates: torch.Tensor) -> torch.Tensor:
    """``first`` followed by the distinct ``candidates`` not in it (in id order)."""
    new = torch.unique(candidates)
    return torch.cat([first, new[~torch.isin(new, first)]])


class NativeSampler:
    """Neighbour sampling on a :class:`GraphTensors`' edge tensors, on their device.

    ``fanouts``: one per layer from the input layer to the output layer
    (-1: all in-neighbours), as ``dgl.dataloading.NeighborSampler`` takes
    them; a fan-out counts per relation. Builds, once, each relation's
    in-edges grouped by destination (``O(E)``, the size of the graph itself).
    """

    name = "native"

    def __init__(self, graph: GraphTensors, fanouts: list[int]):
        self.fanouts = list(fanouts)
        self.num_nodes = dict(graph.num_nodes)
        self.device = graph.device
        self.incoming: dict[Relation, tuple[torch.Tensor, torch.Tensor, torch.Tensor]] = {}
        for rel, (src, dst) in graph.edges.items():
            order = torch.argsort(dst, stable=True)
            counts = torch.bincount(dst, minlength=graph.num_nodes[rel[2]])
            indptr = torch.zeros(counts.numel() + 1, dtype=torch.int64, device=dst.device)
            torch.cumsum(counts, 0, out=indptr[1:])
            self.incoming[rel] = (indptr, src[order], order)

    def sample(self, seeds: dict[str, torch.Tensor], generator: torch.Generator) -> list[Block]:
        """Blocks for output nodes ``seeds`` (type -> ids), ``blocks[0]`` the input layer."""
        empty = torch.zeros(0, dtype=torch.int64, device=self.device)
        dst = {t: seeds[t].to(self.device) if t in seeds else empty for t in self.num_nodes}
        blocks: list[Block] = []
        for fanout in reversed(self.fanouts):
            block = self._block(dst, fanout, generator)
            blocks.insert(0, block)
            dst = block.src_nodes
        return blocks

    def _block(self, dst_nodes: dict[str, torch.Tensor], fanout: int, generator: torch.Generator) -> Block:
        picked = {}  # relation -> (global src ids, local dst rows, edge ids)
        for rel, (indptr, sources, edge_ids) in self.incoming.items():
            position, rows = self._in_edges(indptr, dst_nodes[rel[2]], fanout, generator)
            picked[rel] = (sources[position], rows, edge_ids[position])
        src_nodes = {}
        for t, first in dst_nodes.items():
            candidates = [ids for rel, (ids, _, _) in picked.items() if rel[0] == t]
            src_nodes[t] = _with_new(first, torch.cat(candidates)) if candidates else first
        edges = {rel: (_local_index(src_nodes[rel[0]], ids), rows) for rel, (ids, rows, _) in picked.items()}
        num_dst = {t: int(ids.numel()) for t, ids in dst_nodes.items()}
        return Block(src_nodes, num_dst, edges, {rel: eids for rel, (_, _, eids) in picked.items()})

    @staticmethod
    def _in_edges(indptr, nodes, fanout, generator) -> tuple[torch.Tensor, torch.Tensor]:
        """(positions in the grouped in-edge arrays, the output row of each) of the edges kept for ``nodes``."""
        start = indptr[nodes]
        degree = indptr[nodes + 1] - start
        rows = torch.arange(nodes.numel(), device=nodes.device)
        whole = degree if fanout < 0 else torch.where(degree <= fanout, degree, 0)
        row_of = torch.repeat_interleave(rows, whole)
        offset = torch.arange(row_of.numel(), device=nodes.device) - torch.repeat_interleave(
            torch.cumsum(whole, 0) - whole, whole
        )
        positions, owners = [start[row_of] + offset], [row_of]
        if fanout >= 0:
            busy = torch.nonzero(degree > fanout).squeeze(1)
            if busy.numel():
                chosen = random_subsets(degree[busy], fanout, generator)  # [b, fanout]
                positions.append((start[busy].unsqueeze(1) + chosen).flatten())
                owners.append(busy.repeat_interleave(fanout))
        return torch.cat(positions), torch.cat(owners)


def make_sampler(backend: str, graph: GraphTensors, fanouts: list[int]):
    """The sampler of ``backend``: DGL's ``dgl.dataloading`` samplers or :class:`NativeSampler`.

    Both offer ``sample(seeds, generator) -> list[Block]``.
    """
    if backend == "dgl":
        from .dgl_backend import DglSampler  # DGL is imported only when chosen

        return DglSampler(graph, fanouts)
    return NativeSampler(graph, fanouts)
