"""PCA and whitening of item embeddings, deterministic up to the data (PCA signs fixed)."""

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
    mean, values, vectors = _moments(x, block)
    top = vectors[:, np.argsort(values)[::-1][:dim]]
    signs = np.sign(top[np.abs(top).argmax(axis=0), np.arange(dim)])
    projection = top * signs
    return _project(x, mean, projection, block)


def whiten(x: np.ndarray, shrinkage: float, block: int = BLOCK) -> np.ndarray:
    """Rows of ``x`` [n, d] centred and rotated onto their principal axes, each axis divided by the
    square root of its variance plus ``shrinkage`` times the mean variance -> float32 [n, d].

    Sentence embeddings crowd into a narrow cone (a few axes carry most of the variance), so a linear
    adapter over them starts badly conditioned; whitening spreads them out. The shrinkage keeps the
    smallest axes, mostly noise, from being blown up. Rows are scaled so their mean length stays that
    of the input's rows.
    """
    n, d = x.shape
    if n < 2:
        raise EsrError("whitening needs at least 2 items")
    mean, values, vectors = _moments(x, block)
    scales = 1.0 / np.sqrt(np.clip(values, 0.0, None) + shrinkage * values.mean())
    out = _project(x, mean, vectors * scales, block)
    out *= np.linalg.norm(x, axis=1).mean() / np.linalg.norm(out, axis=1).mean()
    return out


def _blocks(n: int, block: int) -> list[slice]:
    return [slice(lo, lo + block) for lo in range(0, n, block)]


def _moments(x: np.ndarray, block: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The rows' mean and their covariance's eigenvalues and eigenvectors (columns), in float64: the d x d
    covariance (not an n x d SVD), accumulated ``block`` rows at a time."""
    n, d = x.shape
    blocks = _blocks(n, block)
    mean = sum(x[rows].sum(axis=0, dtype=np.float64) for rows in blocks) / n
    cov = np.zeros((d, d))
    for rows in blocks:
        centred = x[rows].astype(np.float64) - mean
        cov += centred.T @ centred
    values, vectors = np.linalg.eigh(cov / (n - 1))
    return mean, values, vectors


def _project(x: np.ndarray, mean: np.ndarray, projection: np.ndarray, block: int) -> np.ndarray:
    out = np.empty((x.shape[0], projection.shape[1]), np.float32)
    for rows in _blocks(x.shape[0], block):
        out[rows] = (x[rows].astype(np.float64) - mean) @ projection
    return out
