"""The heterograph as torch edge-index tensors: what both message-passing paths consume.

A :class:`GraphTensors` holds, per node type, the number of nodes and, per
relation ``(src_type, rel, dst_type)``, two int64 tensors ``src [E]`` and
``dst [E]`` on one device. It is built from the DGL-free
:class:`~esrgraph.graph.edges.HeteroEdges` (or from a DGL graph, see
``dgl_backend.tensors_from_dgl``) and never needs DGL itself.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from ..graph.edges import HeteroEdges, Relation


@dataclass
class GraphTensors:
    num_nodes: dict[str, int]
    edges: dict[Relation, tuple[torch.Tensor, torch.Tensor]]  # relation -> (src [E], dst [E]), int64

    @classmethod
    def from_edges(cls, graph: HeteroEdges, device: str | torch.device = "cpu") -> GraphTensors:
        edges = {
            rel: (
                torch.as_tensor(np.asarray(src, dtype=np.int64), device=device),
                torch.as_tensor(np.asarray(dst, dtype=np.int64), device=device),
            )
            for rel, (src, dst) in graph.edges.items()
        }
        return cls(dict(graph.num_nodes), edges)

    @property
    def device(self) -> torch.device:
        for src, _ in self.edges.values():
            return src.device
        return torch.device("cpu")

    def num_dst_nodes(self, node_type: str) -> int:
        """Message passing updates every node of the graph (a sampled ``Block`` updates only some)."""
        return self.num_nodes[node_type]

    def relations(self) -> list[Relation]:
        return list(self.edges)

    def node_types(self) -> list[str]:
        return list(self.num_nodes)

    def num_edges(self) -> int:
        return sum(int(src.numel()) for src, _ in self.edges.values())

    def to(self, device: str | torch.device) -> GraphTensors:
        return GraphTensors(dict(self.num_nodes), {r: (s.to(device), d.to(device)) for r, (s, d) in self.edges.items()})

    def to_edges(self) -> HeteroEdges:
        return HeteroEdges(
            dict(self.num_nodes), {r: (s.cpu().numpy(), d.cpu().numpy()) for r, (s, d) in self.edges.items()}
        )
