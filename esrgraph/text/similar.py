"""Top-K most similar users by cosine similarity, computed in blocks."""

from __future__ import annotations

import logging

import numpy as np
import torch
from tqdm.auto import tqdm

log = logging.getLogger(__name__)

# Bytes allowed for one block of similarities (block rows x all users, float32).
BLOCK_BYTES = 256 * 2**20


def top_k_similar(vectors: np.ndarray, k: int, block_size: int = 1024) -> tuple[np.ndarray, np.ndarray]:
    """For each row, the ``k`` most cosine-similar other rows, most similar first.

    Returns ``(indices [n, k] int64, similarities [n, k] float32)``. A row never
    lists itself. Blocks of rows are scored against all rows, so memory is
    O(block x n) and stays bounded at a million users.
    """
    n = vectors.shape[0]
    k = min(k, n - 1)
    if k < 1:
        return np.zeros((n, 0), np.int64), np.zeros((n, 0), np.float32)
    unit = torch.from_numpy(np.ascontiguousarray(vectors, dtype=np.float32))
    unit = unit / unit.norm(dim=1, keepdim=True).clamp_min(1e-12)
    rows = max(1, min(block_size, BLOCK_BYTES // (4 * n)))
    indices = np.zeros((n, k), np.int64)
    scores = np.zeros((n, k), np.float32)
    with torch.inference_mode():
        for lo in tqdm(range(0, n, rows), desc="similar users", unit="block", disable=None):
            hi = min(lo + rows, n)
            sims = unit[lo:hi] @ unit.T
            sims[torch.arange(hi - lo), torch.arange(lo, hi)] = -float("inf")
            top = torch.topk(sims, k, dim=1, sorted=True)
            indices[lo:hi] = top.indices.numpy()
            scores[lo:hi] = top.values.numpy()
    return indices, scores
