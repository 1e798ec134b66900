"""A DGL-free view of the item–attribute heterograph: node counts and edge-index arrays.

The graph stage saves this beside ``graph.bin`` as ``edges.npz`` so that the
native-PyTorch message passing can run where DGL is not installed (e.g. a GPU
machine whose torch has no DGL build). Item node ``i`` is canonical item ``i``;
node 0 is the padding item and has no edges.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..artifacts import save_arrays
from ..errors import InputError

NODE_TYPES = ("item", "brand", "category", "price")
# (source type, relation, destination type); every attribute relation in both directions.
RELATIONS = (
    ("item", "has_brand", "brand"),
    ("brand", "brand_of", "item"),
    ("item", "in_category", "category"),
    ("category", "category_of", "item"),
    ("item", "has_price", "price"),
    ("price", "price_of", "item"),
)
# Optional hierarchy edges between category levels (child -> parent and back).
CATEGORY_RELATIONS = (
    ("category", "child_of", "category"),
    ("category", "parent_of", "category"),
)
Relation = tuple[str, str, str]


@dataclass
class HeteroEdges:
    num_nodes: dict[str, int]
    edges: dict[Relation, tuple[np.ndarray, np.ndarray]]  # relation -> (src ids, dst ids), int64

    def relations(self) -> list[Relation]:
        return list(self.edges)

    def num_edges(self) -> int:
        return sum(len(src) for src, _ in self.edges.values())

    def save(self, path: Path) -> None:
        arrays = {f"nodes:{t}": np.array(n, dtype=np.int64) for t, n in self.num_nodes.items()}
        for (s, r, d), (src, dst) in self.edges.items():
            arrays[f"src:{s}:{r}:{d}"] = np.asarray(src, dtype=np.int64)
            arrays[f"dst:{s}:{r}:{d}"] = np.asarray(dst, dtype=np.int64)
        save_arrays(path, **arrays)

    @classmethod
    def load(cls, path: Path) -> HeteroEdges:
        try:
            data = np.load(path)
        except (OSError, ValueError) as exc:
            raise InputError(path, f"cannot read the graph edges ({exc})") from None
        with data:
            num_nodes = {k.split(":", 1)[1]: int(data[k]) for k in data.files if k.startswith("nodes:")}
            edges = {}
            for key in data.files:
                if key.startswith("src:"):
                    _, s, r, d = key.split(":")
                    edges[(s, r, d)] = (data[key], data[f"dst:{s}:{r}:{d}"])
        return cls(num_nodes, edges)
