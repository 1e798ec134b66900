"""A cache of text encodings keyed by (model, token limit, precision) and text.

Encodings are stored per model key in one ``.npz`` file under the cache folder.
Progress is flushed every few seconds during encoding, so an interrupted run
resumes where it stopped and an identical re-run encodes nothing. A damaged
file is only a lost cache: it is dropped with a warning and its texts are
encoded again.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from ..artifacts import save_arrays
from .encoder import TextEncoder

log = logging.getLogger(__name__)


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
            self.rows = self._read()

    def _read(self) -> dict[str, np.ndarray]:
        """The cached rows; a damaged file is removed, since it would fail every later run."""
        loaded = _load(self.path)
        if isinstance(loaded, str):
            log.warning("%s: damaged text cache (%s); removed, its texts are encoded again", self.path, loaded)
            with contextlib.suppress(FileNotFoundError):
                os.unlink(self.path)
            return {}
        keys, vectors = loaded
        if vectors.shape[1] != self.dim:  # the name hashes the model key: only a collision gets here
            return {}
        return dict(zip(keys.tolist(), vectors))

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


def _load(path: Path) -> tuple[np.ndarray, np.ndarray] | str:
    """(keys, vectors) of a cache file, or what is wrong with it."""
    try:
        with np.load(path, allow_pickle=False) as data:
            keys, vectors = data["keys"], data["vectors"]
    except Exception as exc:  # zipfile, zlib and numpy raise many kinds for a truncated or foreign file
        lines = str(exc).strip().splitlines()
        return lines[0] if lines else type(exc).__name__
    if keys.ndim != 1 or vectors.ndim != 2 or len(keys) != len(vectors):
        return f"{len(keys)} keys for vectors of shape {vectors.shape}"
    if not np.isfinite(vectors).all():
        return "non-finite vectors"
    return keys, vectors


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
