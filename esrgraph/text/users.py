"""User vectors built from their items' vectors, instead of encoding a text per user.

A user's text is the titles of their training items, most recent first, so
encoding it mostly re-reads texts the item encoding already read, and user
texts are the longest to encode. Averaging the user's training items' vectors,
the most recent weighing most, costs nothing by comparison. Only training
items are read: validation and test items never enter a user's vector.
"""

from __future__ import annotations

import numpy as np

from ..data.dataset import Dataset

RECENCY = 0.8  # the weight of an item relative to the one after it in a user's history


def item_average_users(ds: Dataset, item_vectors: np.ndarray) -> np.ndarray:
    """[U, d]: each user's recency-weighted mean of unit-length item vectors ``item_vectors`` [N, d]
    (row i is item i + 1), scaled to unit length; a user with no training item gets zeros."""
    unit = item_vectors / np.maximum(np.linalg.norm(item_vectors, axis=1, keepdims=True), 1e-12)
    out = np.zeros((ds.num_users, item_vectors.shape[1]), np.float32)
    for user in range(ds.num_users):
        items = ds.train_sequence(user)
        if len(items):
            weights = RECENCY ** np.arange(len(items))[::-1]  # the most recent item weighs 1
            out[user] = weights @ unit[items - 1]
    return out / np.maximum(np.linalg.norm(out, axis=1, keepdims=True), 1e-12)
