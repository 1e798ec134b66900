"""Top-k search over the item table: exact (the default) or approximate for catalogues of millions of items.

Scores are inner products of user vectors with the item table's rows, as the
model scores. :class:`ApproximateIndex` clusters the items into inverted
lists and searches only the ``probes`` lists nearest each user; it is built
on the optional ``faiss-cpu`` package (``pip install faiss-cpu``). Its
recall@k against exact ranking is measured by ``benchmarks/recommend_speed.py``.
"""

from __future__ import annotations

import math

import numpy as np
import torch

from ..errors import EsrError


class ExactIndex:
    """Every item scored: ``search`` is a matrix product and a top-k."""

    def __init__(self, table: torch.Tensor):
        self.table = table  # [N + 1, D], row 0 padding

    def search(self, vectors: torch.Tensor, k: int) -> tuple[np.ndarray, np.ndarray]:
        scores = vectors @ self.table.T
        scores[:, 0] = -float("inf")
        top = torch.topk(scores, min(k, scores.shape[1] - 1), dim=1)
        return top.values.cpu().numpy(), top.indices.cpu().numpy()


class ApproximateIndex:
    """Inverted lists over the items (item ids kept: row i of the table is item i)."""

    def __init__(self, table: torch.Tensor, lists: int | None = None, probes: int = 16, seed: int = 0):
        try:
            import faiss
        except ImportError:
            raise EsrError("the approximate index needs the faiss-cpu package: pip install faiss-cpu") from None
        items = np.ascontiguousarray(table[1:].detach().cpu().numpy(), dtype=np.float32)
        lists = min(lists or max(1, int(4 * math.sqrt(len(items)))), len(items))  # about 4·√N, the usual rule
        quantizer = faiss.IndexFlatIP(items.shape[1])
        self.index = faiss.IndexIVFFlat(quantizer, items.shape[1], lists, faiss.METRIC_INNER_PRODUCT)
        self.index.cp.seed = seed
        sample = 64 * lists  # enough rows per list to place its centre, far fewer than a million
        items_to_train = items
        if len(items) > sample:
            items_to_train = items[np.random.default_rng(seed).choice(len(items), sample, replace=False)]
        self.index.train(items_to_train)
        self.index.add(items)
        self.index.nprobe = min(probes, lists)

    def search(self, vectors: torch.Tensor, k: int) -> tuple[np.ndarray, np.ndarray]:
        queries = np.ascontiguousarray(vectors.detach().cpu().numpy(), dtype=np.float32)
        scores, ids = self.index.search(queries, k)
        return scores, np.where(ids >= 0, ids + 1, 0)  # faiss row r is item r + 1; -1 marks a missing hit


def recall_at_k(exact_ids: np.ndarray, approximate_ids: np.ndarray) -> float:
    """Share of the exact top-k that the approximate top-k found."""
    hits = [len(set(a.tolist()) & set(e.tolist())) for a, e in zip(approximate_ids, exact_ids)]
    return float(np.sum(hits) / exact_ids.size)
