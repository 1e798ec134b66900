"""The ``embed`` stage: item and user texts -> LLM embeddings, PCA, similar users.

Under torchrun every process encodes its share of the texts not yet cached
(:func:`~esrgraph.text.cache.encode_cached`); rank 0 assembles and writes the
artifacts.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np

from ..artifacts import save_array
from ..data.dataset import categories_are_path
from ..data.store import load_dataset
from ..errors import EsrError
from ..text.cache import EmbeddingCache, encode_cached
from ..text.encoder import load_encoder
from ..text.reduce import pca
from ..text.similar import similar_users
from ..text.store import ARTIFACTS
from ..text.templates import item_texts, user_texts
from ..text.users import item_average_users
from . import Stage, StageRun

log = logging.getLogger(__name__)


def produce(ctx: StageRun, out: Path | None) -> dict | None:
    """The artifacts into ``out`` (None on the other processes of a multi-process run: rank 0 writes)."""
    ds = load_dataset(ctx.inputs["dataset"])
    cfg, dist = ctx.cfg.embed, ctx.dist
    as_path = categories_are_path(ds, ctx.cfg.dataset.metadata.categories_are_path)
    encoder = load_encoder(cfg, ctx.run.cache_dir, dist.local_rank)
    items = item_texts(ds, cfg.item_template, as_path, encoder.max_tokens)
    users = None
    if cfg.users == "text":
        users = user_texts(ds, cfg.user_item_template, cfg.user_separator, as_path, encoder.max_tokens, items)
    item_vecs, encoded_users = _encode(encoder, cfg, ctx.run.cache_dir, items, users, dist)
    if not dist.is_main:
        return None
    user_vecs = user_vectors(ds, cfg, item_vecs, encoded_users)
    item_llm = np.vstack([np.zeros((1, encoder.dim), np.float32), item_vecs])
    item_pca = np.vstack([np.zeros((1, cfg.pca_dim), np.float32), pca(item_vecs, cfg.pca_dim)])
    if user_vecs.shape[1]:
        similar, scores = similar_users(user_vecs, cfg.similar_users, cfg.similar_search, cfg.block_size)
    else:  # no user vectors: no similar users
        similar, scores = np.zeros((ds.num_users, 0), np.int64), np.zeros((ds.num_users, 0), np.float32)
    arrays = dict(zip(ARTIFACTS, (item_llm, item_pca, user_vecs, similar, scores)))
    for name, array in arrays.items():
        if array.dtype.kind == "f" and not np.isfinite(array).all():
            raise EsrError(f"embed: {name} holds NaN or infinite values; nothing was written")
        save_array(out / name, array)
    return {
        "model": encoder.model_id,
        "device": encoder.device,
        "precision": encoder.precision,
        "backend": encoder.backend,
        "max_tokens": encoder.max_tokens,
        "texts": {"items": len(items), "users": len(user_vecs) if cfg.users == "text" else 0},
        "users": cfg.users,
        "world_size": dist.world,
    }


def _encode(encoder, cfg, cache_dir: Path, items: list[str], users: list[str] | None, dist):
    """Item and user text vectors (None off rank 0). The cache, a second copy of every vector, is
    released on return: at a million items it was a GiB of the stage's peak memory."""
    cache = EmbeddingCache(cache_dir / "text", encoder.cache_key(), encoder.dim) if cfg.cache else None
    item_vecs = encode_cached(encoder, items, cfg.batch_size, cache, "item texts", dist)
    if users is None:
        return item_vecs, None
    return item_vecs, encode_cached(encoder, users, cfg.batch_size, cache, "user texts", dist)


def user_vectors(ds, cfg, item_vecs: np.ndarray, encoded_users: np.ndarray | None) -> np.ndarray:
    """[U, d] user vectors as ``embed.users`` says ([U, 0] for none)."""
    if cfg.users == "none":
        return np.zeros((ds.num_users, 0), np.float32)
    if cfg.users == "items":
        return item_average_users(ds, item_vecs)
    return encoded_users


STAGE = Stage(
    "embed",
    reads=lambda cfg: ("dataset",),
    section=lambda cfg: cfg.embed,
    produce=produce,
    distributed=True,
    device=lambda cfg: cfg.embed.device,
)
