"""The ``embed`` stage: item and user texts -> LLM embeddings, PCA, similar users."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np

from ..artifacts import save_array
from ..data import stage as data_stage
from ..errors import EsrError
from ..runs import Run
from .cache import EmbeddingCache, encode_cached
from .encoder import TextEncoder
from .reduce import pca
from .similar import top_k_similar
from .templates import item_texts, user_texts

log = logging.getLogger(__name__)

STAGE = "embed"
ARTIFACTS = ("item_llm.npy", "item_pca.npy", "user_llm.npy", "similar_users.npy", "similar_scores.npy")


def embed(run: Run) -> Path:
    """Run the embed stage (and the dataset stage before it); returns the stage folder."""
    ds = data_stage.prepare(run)
    cfg = run.cfg.embed
    categories_are_path = run.cfg.dataset.metadata.categories_are_path

    def produce(out: Path) -> dict:
        encoder = TextEncoder.load(cfg.model, cfg.device, cfg.precision, cfg.max_tokens)
        cache = EmbeddingCache(run.cache_dir / "text", encoder.cache_key(), encoder.dim) if cfg.cache else None
        items = item_texts(ds, cfg.item_template, categories_are_path, encoder.max_tokens)
        users = user_texts(ds, cfg.user_item_template, cfg.user_separator, categories_are_path, encoder.max_tokens, items)
        item_vecs = encode_cached(encoder, items, cfg.batch_size, cache, "item texts")
        user_vecs = encode_cached(encoder, users, cfg.batch_size, cache, "user texts")
        item_llm = np.vstack([np.zeros((1, encoder.dim), np.float32), item_vecs])
        item_pca = np.vstack([np.zeros((1, cfg.pca_dim), np.float32), pca(item_vecs, cfg.pca_dim)])
        similar, scores = top_k_similar(user_vecs, cfg.similar_users, cfg.block_size)
        arrays = dict(zip(ARTIFACTS, (item_llm, item_pca, user_vecs, similar, scores)))
        for name, array in arrays.items():
            if array.dtype.kind == "f" and not np.isfinite(array).all():
                raise EsrError(f"embed: {name} holds NaN or infinite values; nothing was written")
            save_array(out / name, array)
        return {"model": encoder.model_id, "device": encoder.device, "precision": encoder.precision,
                "max_tokens": encoder.max_tokens, "texts": {"items": len(items), "users": len(users)}}

    return run.run_stage(STAGE, cfg, {data_stage.STAGE: run.stage_key(data_stage.STAGE)}, produce)


def load_embeddings(stage_dir: Path) -> dict[str, np.ndarray]:
    return {name.removesuffix(".npy"): np.load(stage_dir / name) for name in ARTIFACTS}
