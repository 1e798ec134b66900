"""PCA of item embeddings, deterministic up to the data (signs fixed)."""

from __future__ import annotations

import numpy as np

from ..errors import EsrError

BLOCK = 65_536  # rows converted to float64 at a time


def pca(x: np.ndarray, dim: int, block: int = BLOCK) -> np.ndarray:
    """Project rows of ``x`` [n, d] onto their top ``dim`` principal components -> float32 [n, dim].

    Uses the d x d covariance (not an n x d SVD), accumulated ``block`` rows at a
    time in float64, so memory beyond the input and the output stays O(block·d):
    whole float64 copies of a million 384-wide rows were 6 GiB of the embed
    stage's peak. Each component's sign is chosen so its largest loading is
    positive, which makes the result reproducible.
    """
    n, d = x.shape
    if dim > d:
        raise EsrError(f"embed.pca_dim is {dim}, larger than the text embedding size {d}")
    if n < 2:
        raise EsrError("PCA needs at least 2 items")
    blocks = [slice(lo, lo + block) for lo in range(0, n, block)]
    mean = sum(x[rows].sum(axis=0, dtype=np.float64) for rows in blocks) / n
    cov = np.zeros((d, d))
    for rows in blocks:
        centred = x[rows].astype(np.float64) - mean
        cov += centred.T @ centred
    values, vectors = np.linalg.eigh(cov / (n - 1))
    top = vectors[:, np.argsort(values)[::-1][:dim]]
    signs = np.sign(top[np.abs(top).argmax(axis=0), np.arange(dim)])
    projection = top * signs
    out = np.empty((n, dim), np.float32)
    for rows in blocks:
        out[rows] = (x[rows].astype(np.float64) - mean) @ projection
    return out
