"""GAT message passing with DGL's sparse kernels (``dgl.ops``), and DGL graph conversions.

Imported only when the DGL backend is chosen, so the rest of ``esrgraph.gnn``
runs where DGL is not installed.
"""

from __future__ import annotations

import dgl
import torch

from .tensors import GraphTensors


def relation_graph(graph: GraphTensors, rel) -> dgl.DGLGraph:
    """A one-relation DGL graph over ``graph``'s edge tensors for ``rel`` (same edge order)."""
    src_type, _, dst_type = rel
    src, dst = graph.edges[rel]
    sizes = {src_type: graph.num_nodes[src_type], dst_type: graph.num_nodes[dst_type]}
    return dgl.heterograph({rel: (src, dst)}, num_nodes_dict=sizes, idtype=torch.int64, device=src.device)


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

    def __init__(self, graph: GraphTensors):
        self.graph = graph
        self._graphs: dict = {}

    def _g(self, rel):
        if rel not in self._graphs:
            self._graphs[rel] = relation_graph(self.graph, rel)
        return self._graphs[rel]

    def u_add_v(self, rel, src_scores: torch.Tensor, dst_scores: torch.Tensor) -> torch.Tensor:
        return dgl.ops.u_add_v(self._g(rel), src_scores, dst_scores)

    def edge_softmax(self, rel, logits: torch.Tensor) -> torch.Tensor:
        return dgl.ops.edge_softmax(self._g(rel), logits)

    def u_mul_e_sum(self, rel, x: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
        return dgl.ops.u_mul_e_sum(self._g(rel), x, weights.unsqueeze(-1))
