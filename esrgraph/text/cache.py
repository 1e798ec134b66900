"""A cache of text encodings keyed by (model, token limit, precision) and text.

Encodings are stored per model key in one ``.npz`` file under the cache folder.
Progress is flushed every few seconds during encoding, so an interrupted run
resumes where it stopped and an identical re-run encodes nothing.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from ..artifacts import save_arrays
from .encoder import TextEncoder


def text_key(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:32]


class EmbeddingCache:
    def __init__(self, folder: Path, model_key: str, dim: int, flush_seconds: float = 20.0):
        self.path = Path(folder) / (hashlib.sha256(model_key.encode()).hexdigest()[:16] + ".npz")
        self.dim = dim
        self.flush_seconds = flush_seconds
        self.rows: dict[str, np.ndarray] = {}
        self._dirty = False
        self._last_flush = time.monotonic()
        if self.path.is_file():
            try:
                with np.load(self.path) as data:
                    if data["vectors"].shape[1] == dim:
                        self.rows = dict(zip(data["keys"].tolist(), data["vectors"]))
            except (OSError, ValueError, KeyError):
                self.rows = {}  # a damaged cache is only a cache: start over

    def get(self, key: str) -> np.ndarray | None:
        return self.rows.get(key)

    def put_many(self, keys: Sequence[str], vectors: np.ndarray) -> None:
        for key, vector in zip(keys, vectors):
            self.rows[key] = vector
        self._dirty = True
        if time.monotonic() - self._last_flush > self.flush_seconds:
            self.flush()

    def flush(self) -> None:
        if not self._dirty:
            return
        keys = np.array(list(self.rows), dtype="U32")
        vectors = (
            np.stack(list(self.rows.values())).astype(np.float32) if self.rows else np.zeros((0, self.dim), np.float32)
        )
        save_arrays(self.path, keys=keys, vectors=vectors)
        self._dirty = False
        self._last_flush = time.monotonic()


def encode_cached(
    encoder: TextEncoder, texts: Sequence[str], batch_size: int, cache: EmbeddingCache | None, desc: str
) -> np.ndarray:
    """Encode unique texts not yet in the cache; return one row per input text."""
    keys = [text_key(t) for t in texts]
    unique: dict[str, str] = {}
    for key, text in zip(keys, texts):
        if key not in unique and (cache is None or cache.get(key) is None):
            unique[key] = text
    todo_keys = list(unique)
    fresh: dict[str, np.ndarray] = {}

    def keep(indices: list[int], vectors: np.ndarray) -> None:
        chunk_keys = [todo_keys[i] for i in indices]
        fresh.update(zip(chunk_keys, vectors))
        if cache is not None:
            cache.put_many(chunk_keys, vectors)

    try:
        if todo_keys:
            encoder.encode([unique[k] for k in todo_keys], batch_size, desc=desc, on_chunk=keep)
    finally:
        if cache is not None:
            cache.flush()
    rows = [fresh[k] if k in fresh else cache.get(k) for k in keys]  # type: ignore[union-attr]
    return np.stack(rows).astype(np.float32) if rows else np.zeros((0, encoder.dim), np.float32)
