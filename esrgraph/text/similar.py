"""Top-K most similar users by cosine similarity: exactly in blocks, or through an approximate index.

Exact search scores every pair of users: its time grows with the square of
their number (about an hour at a million users on two cores). Above
``EXACT_LIMIT`` users ``auto`` searches an inverted-file index (faiss):
vectors are assigned to about 4·√n clusters and each query scans the
``PROBES`` nearest, so its cost grows about as n·√n.
"""

from __future__ import annotations

import logging

import numpy as np
import torch

from ..errors import EsrError
from ..progress import Progress

log = logging.getLogger(__name__)

# Bytes allowed for one block of similarities (block rows x all users, float32).
BLOCK_BYTES = 256 * 2**20
EXACT_LIMIT = 200_000  # users above which auto searches approximately
PROBES = 32  # clusters each approximate query scans


def similar_users(
    vectors: np.ndarray, k: int, search: str = "auto", block_size: int = 1024
) -> tuple[np.ndarray, np.ndarray]:
    """``top_k_similar`` (exact) or ``approximate_top_k`` as ``search`` says (auto: by the number of users)."""
    if search == "auto":
        search = "approximate" if len(vectors) > EXACT_LIMIT and faiss_available() else "exact"
        if len(vectors) > EXACT_LIMIT and search == "exact":
            log.warning(
                "similar users: %d users searched exactly (pip install faiss-cpu searches faster)", len(vectors)
            )
    if search == "approximate":
        return approximate_top_k(vectors, k)
    return top_k_similar(vectors, k, block_size)


def faiss_available() -> bool:
    try:
        import faiss  # noqa: F401
    except ImportError:
        return False
    return True


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
    with torch.inference_mode(), Progress(-(-n // rows), "similar users", "block") as progress:
        for lo in range(0, n, rows):
            hi = min(lo + rows, n)
            sims = unit[lo:hi] @ unit.T
            sims[torch.arange(hi - lo), torch.arange(lo, hi)] = -float("inf")
            top = torch.topk(sims, k, dim=1, sorted=True)
            indices[lo:hi] = top.indices.numpy()
            scores[lo:hi] = top.values.numpy()
            progress.update()
    return indices, scores


def approximate_top_k(vectors: np.ndarray, k: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """The ``k`` most cosine-similar other rows through an inverted-file index; as ``top_k_similar``."""
    try:
        import faiss
    except ImportError:
        raise EsrError("embed.similar_search: approximate search needs faiss: pip install faiss-cpu") from None
    n = vectors.shape[0]
    k = min(k, n - 1)
    if k < 1:
        return np.zeros((n, 0), np.int64), np.zeros((n, 0), np.float32)
    unit = np.ascontiguousarray(vectors, dtype=np.float32)
    unit /= np.maximum(np.linalg.norm(unit, axis=1, keepdims=True), 1e-12)
    lists = max(1, min(int(4 * np.sqrt(n)), n // 39))  # faiss wants about 39 training points per list
    index = faiss.IndexIVFFlat(faiss.IndexFlatIP(unit.shape[1]), unit.shape[1], lists, faiss.METRIC_INNER_PRODUCT)
    train = unit[np.random.default_rng(seed).choice(n, min(n, 256 * lists), replace=False)]
    index.train(train)
    index.add(unit)
    index.nprobe = min(PROBES, lists)
    scores, indices = index.search(unit, k + 1)  # the row itself comes back too, usually first
    return _without_self(indices, scores, k)


def _without_self(indices: np.ndarray, scores: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Each row's neighbours minus the row itself (or its last one where the row did not come back)."""
    rows = np.arange(len(indices))[:, None]
    keep = indices != rows
    keep &= np.cumsum(keep, axis=1) <= k
    out_i = np.zeros((len(indices), k), np.int64)
    out_s = np.zeros((len(indices), k), np.float32)
    for r in range(len(indices)):  # at most k + 1 entries a row
        picked = indices[r][keep[r]][:k]
        out_i[r, : len(picked)] = picked
        out_s[r, : len(picked)] = scores[r][keep[r]][:k]
    return out_i, out_s
