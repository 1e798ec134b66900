"""PCA of item embeddings, deterministic up to the data (signs fixed)."""

from __future__ import annotations

import numpy as np

from ..errors import EsrError


def pca(x: np.ndarray, dim: int) -> np.ndarray:
    """Project rows of ``x`` [n, d] onto their top ``dim`` principal components -> [n, dim].

    Uses the d x d covariance (not an n x d SVD), so memory stays O(d^2) beyond
    the input however many items there are. Each component's sign is chosen so
    its largest loading is positive, which makes the result reproducible.
    """
    n, d = x.shape
    if dim > d:
        raise EsrError(f"embed.pca_dim is {dim}, larger than the text embedding size {d}")
    if n < 2:
        raise EsrError("PCA needs at least 2 items")
    x = x.astype(np.float64)
    centred = x - x.mean(axis=0)
    cov = centred.T @ centred / (n - 1)
    values, vectors = np.linalg.eigh(cov)
    top = vectors[:, np.argsort(values)[::-1][:dim]]
    signs = np.sign(top[np.abs(top).argmax(axis=0), np.arange(dim)])
    return (centred @ (top * signs)).astype(np.float32)
