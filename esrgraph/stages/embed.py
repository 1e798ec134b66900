"""The ``embed`` stage: item and user texts -> LLM embeddings, PCA, similar users."""

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


def produce(ctx: StageRun, out: Path) -> dict:
    ds = load_dataset(ctx.inputs["dataset"])
    cfg = ctx.cfg.embed
    as_path = categories_are_path(ds, ctx.cfg.dataset.metadata.categories_are_path)
    encoder = load_encoder(cfg, ctx.run.cache_dir)
    cache = EmbeddingCache(ctx.run.cache_dir / "text", encoder.cache_key(), encoder.dim) if cfg.cache else None
    items = item_texts(ds, cfg.item_template, as_path, encoder.max_tokens)
    item_vecs = encode_cached(encoder, items, cfg.batch_size, cache, "item texts")
    user_vecs = user_vectors(ds, cfg, encoder, cache, items, item_vecs, as_path)
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
    }


def user_vectors(ds, cfg, encoder, cache, items, item_vecs, as_path) -> np.ndarray:
    """[U, d] user vectors as ``embed.users`` says ([U, 0] for none)."""
    if cfg.users == "none":
        return np.zeros((ds.num_users, 0), np.float32)
    if cfg.users == "items":
        return item_average_users(ds, item_vecs)
    users = user_texts(ds, cfg.user_item_template, cfg.user_separator, as_path, encoder.max_tokens, items)
    return encode_cached(encoder, users, cfg.batch_size, cache, "user texts")


STAGE = Stage("embed", reads=lambda cfg: ("dataset",), section=lambda cfg: cfg.embed, produce=produce)
