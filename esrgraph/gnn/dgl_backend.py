"""GAT message passing with DGL's sparse kernels (``dgl.ops``), DGL's neighbour sampling, and conversions.

Imported only when the DGL backend is chosen, so the rest of ``esrgraph.gnn``
runs where DGL is not installed.
"""

from __future__ import annotations

import dgl
import torch

from .blocks import Block
from .tensors import GraphTensors


def relation_graph(graph: GraphTensors | Block, rel) -> dgl.DGLGraph:
    """A one-relation DGL graph (a DGL block for a :class:`Block`) over ``rel``'s edge tensors, same edge order."""
    src_type, _, dst_type = rel
    src, dst = graph.edges[rel]
    if isinstance(graph, Block):
        return dgl.create_block(
            {rel: (src, dst)},
            num_src_nodes={src_type: graph.num_nodes[src_type]},
            num_dst_nodes={dst_type: graph.num_dst_nodes(dst_type)},
            idtype=torch.int64,
            device=src.device,
        )
    sizes = {src_type: graph.num_nodes[src_type], dst_type: graph.num_nodes[dst_type]}
    return dgl.heterograph({rel: (src, dst)}, num_nodes_dict=sizes, idtype=torch.int64, device=src.device)


def tensors_to_dgl(graph: GraphTensors) -> dgl.DGLGraph:
    """The whole heterograph as one DGL graph (edge ids as in ``graph``'s tensors)."""
    data = {rel: (src, dst) for rel, (src, dst) in graph.edges.items()}
    return dgl.heterograph(data, num_nodes_dict=dict(graph.num_nodes), idtype=torch.int64, device=graph.device)


def tensors_from_dgl(g: dgl.DGLGraph) -> GraphTensors:
    """Edge-index tensors of every relation of a DGL heterograph, in edge-id order."""
    num_nodes = {t: g.num_nodes(t) for t in g.ntypes}
    edges = {}
    for rel in g.canonical_etypes:
        src, dst = g.edges(etype=rel, order="eid")
        edges[tuple(rel)] = (src.long(), dst.long())
    return GraphTensors(num_nodes, edges)


def supports(device: torch.device) -> bool:
    """Whether this DGL build can hold graphs on ``device`` (the PyPI build: CPU only)."""
    if device.type == "cpu":
        return True
    try:
        dgl.graph((torch.tensor([0]), torch.tensor([0]))).to(device)
    except Exception:  # DGL raises plain DGLError / RuntimeError for an unsupported device
        return False
    return True


class DglOps:
    """The three GAT primitives on DGL's kernels, one DGL graph per relation (built on first use).

    Same contract and shapes as ``native.NativeOps``, so one set of weights runs on either.
    """

    name = "dgl"

    def __init__(self, graph: GraphTensors | Block):
        self.graph = graph
        self._graphs: dict = {}

    def _g(self, rel):
        if rel not in self._graphs:
            self._graphs[rel] = relation_graph(self.graph, rel)
        return self._graphs[rel]

    def num_dst(self, node_type: str) -> int:
        return self.graph.num_dst_nodes(node_type)

    def u_add_v(self, rel, src_scores: torch.Tensor, dst_scores: torch.Tensor) -> torch.Tensor:
        return dgl.ops.u_add_v(self._g(rel), src_scores, dst_scores)

    def edge_softmax(self, rel, logits: torch.Tensor) -> torch.Tensor:
        return dgl.ops.edge_softmax(self._g(rel), logits)

    def u_mul_e_sum(self, rel, x: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
        return dgl.ops.u_mul_e_sum(self._g(rel), x, weights.unsqueeze(-1))


def block_from_dgl(block: dgl.DGLGraph) -> Block:
    """A DGL block (from ``dgl.dataloading``) as a :class:`Block` of global ids and local edge tensors."""
    src_nodes = {t: block.srcnodes[t].data[dgl.NID] for t in block.srctypes}
    num_dst = {t: block.num_dst_nodes(t) for t in block.dsttypes}
    edges, edge_ids = {}, {}
    for rel in block.canonical_etypes:
        edges[tuple(rel)] = block.edges(etype=rel, order="eid")
        edge_ids[tuple(rel)] = block.edges[rel].data[dgl.EID]
    return Block(src_nodes, num_dst, edges, edge_ids)


class DglSampler:
    """DGL's own neighbour sampling (``dgl.dataloading``) with :class:`~.blocks.NativeSampler`'s contract.

    ``fanouts`` one per layer, input layer first (-1: all in-neighbours, per
    relation). DGL draws from its own generator, so each batch first seeds it
    with a number drawn from ``generator``: a checkpointed generator makes the
    samples repeat on resume.
    """

    name = "dgl"

    def __init__(self, graph: GraphTensors, fanouts: list[int]):
        self.graph = tensors_to_dgl(graph)
        self.sampler = dgl.dataloading.NeighborSampler(list(fanouts))  # -1 (ALL): every in-neighbour

    def sample(self, seeds: dict[str, torch.Tensor], generator: torch.Generator) -> list[Block]:
        # DGL takes a C int
        dgl.seed(int(torch.randint((1 << 31) - 1, (1,), generator=generator, device=generator.device)))
        _, _, blocks = self.sampler.sample_blocks(self.graph, seeds)
        return [block_from_dgl(b) for b in blocks]
