"""A cache of text encodings keyed by (model, token limit, precision or backend) and text.

Encodings of one model key live in one folder under the cache folder, as
chunk files that are written once and never rewritten: each flush (every few
seconds during encoding) writes only the rows encoded since the last one to a
new chunk, so its cost stays the same at a million texts. An interrupted run
resumes where it stopped and an identical re-run encodes nothing. A damaged
chunk is only a lost part of the cache: it is dropped with a warning and its
texts are encoded again. Several processes may append to one folder at once
(each chunk's name holds its writer's pid); past ``MAX_CHUNKS`` files, opening
the cache merges them into one.
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
from ..locks import try_exclusive
from ..training.distributed import DistContext
from .encoder import TextEncoder

log = logging.getLogger(__name__)

MAX_CHUNKS = 64  # chunk files past which opening the cache merges them into one


def text_key(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:32]


class EmbeddingCache:
    def __init__(self, folder: Path, model_key: str, dim: int, flush_seconds: float = 20.0):
        name = hashlib.sha256(model_key.encode()).hexdigest()[:16]
        self.folder = Path(folder) / name
        self.legacy = Path(folder) / (name + ".npz")  # the single file earlier versions rewrote whole
        self.dim = dim
        self.flush_seconds = flush_seconds
        self.rows: dict[str, np.ndarray] = {}
        self._pending: dict[str, np.ndarray] = {}
        self._written = 0
        self._last_flush = time.monotonic()
        read = [path for path in self._files() if self._read(path)]
        if len(read) > MAX_CHUNKS:
            self._merge(read)

    def chunks(self) -> list[Path]:
        """The chunk files on disk, oldest first."""
        return sorted(self.folder.glob("chunk-*.npz")) if self.folder.is_dir() else []

    def _files(self) -> list[Path]:
        return ([self.legacy] if self.legacy.is_file() else []) + self.chunks()

    def _read(self, path: Path) -> bool:
        """Add one file's rows; a damaged file is removed, since it would fail every later run."""
        loaded = _load(path)
        if loaded is None:  # another process merged it away after the listing
            return False
        if isinstance(loaded, str):
            log.warning("%s: damaged text cache (%s); removed, its texts are encoded again", path, loaded)
            with contextlib.suppress(FileNotFoundError):
                os.unlink(path)
            return False
        keys, vectors = loaded
        if vectors.shape[1] != self.dim:  # the name hashes the model key: only a collision gets here
            return False
        self.rows.update(zip(keys.tolist(), vectors))
        return True

    def _merge(self, files: list[Path]) -> None:
        """One chunk of every row in place of ``files`` (one process merges; the others skip it)."""
        with try_exclusive(self.folder / ".merge.lock", "the text cache") as locked:
            if not locked:
                return
            self._write(self.rows)
            for path in files:
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(path)

    def get(self, key: str) -> np.ndarray | None:
        return self.rows.get(key)

    def put_many(self, keys: Sequence[str], vectors: np.ndarray) -> None:
        for key, vector in zip(keys, vectors):
            self.rows[key] = vector
            self._pending[key] = vector
        if time.monotonic() - self._last_flush > self.flush_seconds:
            self.flush()

    def flush(self) -> None:
        """Write the rows added since the last flush to a new chunk."""
        if self._pending:
            self._write(self._pending)
            self._pending = {}
        self._last_flush = time.monotonic()

    def _write(self, rows: dict[str, np.ndarray]) -> None:
        keys = np.array(list(rows), dtype="U32")
        vectors = np.stack(list(rows.values())).astype(np.float32) if rows else np.zeros((0, self.dim), np.float32)
        # time first, so a listing sorts chunks in the order they were written; pid and count keep names unique
        name = f"chunk-{time.time_ns():020d}-{os.getpid()}-{self._written}.npz"
        save_arrays(self.folder / name, keys=keys, vectors=vectors)
        self._written += 1


def _load(path: Path) -> tuple[np.ndarray, np.ndarray] | str | None:
    """(keys, vectors) of a cache file, what is wrong with it, or None when it is gone."""
    try:
        with np.load(path, allow_pickle=False) as data:
            keys, vectors = data["keys"], data["vectors"]
    except FileNotFoundError:
        return None
    except Exception as exc:  # zipfile, zlib and numpy raise many kinds for a truncated or foreign file
        lines = str(exc).strip().splitlines()
        return lines[0] if lines else type(exc).__name__
    if keys.ndim != 1 or vectors.ndim != 2 or len(keys) != len(vectors):
        return f"{len(keys)} keys for vectors of shape {vectors.shape}"
    if not np.isfinite(vectors).all():
        return "non-finite vectors"
    return keys, vectors


def encode_cached(
    encoder: TextEncoder,
    texts: Sequence[str],
    batch_size: int,
    cache: EmbeddingCache | None,
    desc: str,
    dist: DistContext | None = None,
) -> np.ndarray | None:
    """Encode unique texts not yet in the cache; return one row per input text.

    Under torchrun (``dist``), rank 0's list of texts to encode is every rank's; each rank encodes
    every world-th of them (the shares hold texts of every length, so they take about equally long),
    keeps them in the cache and sends them to rank 0, which returns the rows (the others, None).
    """
    dist = dist or DistContext()
    keys = [text_key(t) for t in texts]
    text_of = dict(zip(keys, texts))  # unique texts, in their first order
    todo = dist.broadcast_object([k for k in text_of if cache is None or cache.get(k) is None])
    shares = [todo[rank :: dist.world] for rank in range(dist.world)]
    mine = _encode_share(encoder, [text_of[k] for k in shares[dist.rank]], shares[dist.rank], batch_size, cache, desc)
    gathered = dist.gather_rows(mine, [len(share) for share in shares])
    if gathered is None:
        return None
    fresh = {key: row for share, rows in zip(shares, gathered) for key, row in zip(share, rows)}
    rows = [fresh[k] if k in fresh else cache.get(k) for k in keys]  # type: ignore[union-attr]
    return np.stack(rows).astype(np.float32) if rows else np.zeros((0, encoder.dim), np.float32)


def _encode_share(
    encoder: TextEncoder,
    texts: list[str],
    keys: list[str],
    batch_size: int,
    cache: EmbeddingCache | None,
    desc: str,
) -> np.ndarray:
    """[len(texts), dim] encodings, each chunk kept in the cache as soon as it is encoded."""

    def keep(indices: list[int], vectors: np.ndarray) -> None:
        if cache is not None:
            cache.put_many([keys[i] for i in indices], vectors)

    try:
        if not texts:
            return np.zeros((0, encoder.dim), np.float32)
        return encoder.encode(texts, batch_size, desc=desc, on_chunk=keep)
    finally:
        if cache is not None:
            cache.flush()
