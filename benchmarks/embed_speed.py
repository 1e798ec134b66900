"""Texts per second of `esr embed`'s encoder against plain `SentenceTransformer.encode`.

Both encode the same texts (the bundled data's item and user texts, built as
`esr embed` builds them) with the same model and token limit; plain `encode`
runs with the library's defaults. Agreement is the per-text cosine between the
two. Usage:

    python benchmarks/embed_speed.py [CONFIG] [--texts 600] [--all] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import logging
import platform
import time

import numpy as np
import torch

from esrgraph.config import load_config
from esrgraph.data.dataset import build_dataset, categories_are_path
from esrgraph.text.encoder import TextEncoder
from esrgraph.text.templates import item_texts, user_texts


def sample_texts(cfg, count: int | None, max_tokens: int) -> list[str]:
    ds = build_dataset(cfg.dataset)
    path = categories_are_path(ds, cfg.dataset.metadata.categories_are_path)
    items = item_texts(ds, cfg.embed.item_template, path, max_tokens)
    users = user_texts(ds, cfg.embed.user_item_template, cfg.embed.user_separator, path, max_tokens, items)
    if count is None:
        return items + users
    rng = np.random.default_rng(0)
    share = len(items) / (len(items) + len(users))
    n_items = int(round(count * share))
    pick = lambda texts, n: [texts[i] for i in rng.choice(len(texts), size=min(n, len(texts)), replace=False)]
    return pick(items, n_items) + pick(users, count - n_items)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("config", nargs="?")
    parser.add_argument("--texts", type=int, default=600, help="random sample of item and user texts")
    parser.add_argument(
        "--all", action="store_true", help="every item and user text (plain encode takes ~16 min on 2 cores)"
    )
    parser.add_argument("--json", help="also write the result here")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    cfg = load_config(args.config)
    fast = TextEncoder.load(cfg.embed.model, cfg.embed.device, cfg.embed.precision, cfg.embed.max_tokens)
    texts = sample_texts(cfg, None if args.all else args.texts, fast.max_tokens)
    tokens = fast.token_counts(texts)

    start = time.perf_counter()
    with torch.inference_mode():
        plain = fast.model.encode(texts, convert_to_numpy=True)  # the library's defaults (batch 32, fp32)
    plain_s = time.perf_counter() - start

    start = time.perf_counter()
    ours = fast.encode(texts, batch_size=cfg.embed.batch_size)
    ours_s = time.perf_counter() - start

    cos = (ours * plain).sum(1) / np.linalg.norm(ours, axis=1) / np.linalg.norm(plain, axis=1)
    result = {
        "texts": len(texts),
        "mean_tokens": round(float(tokens.mean()), 1),
        "batch_size": cfg.embed.batch_size,
        "max_tokens": fast.max_tokens,
        "device": fast.device,
        "precision": fast.precision,
        "threads": torch.get_num_threads(),
        "cpu": platform.processor() or platform.machine(),
        "plain_texts_per_s": round(len(texts) / plain_s, 2),
        "esrgraph_texts_per_s": round(len(texts) / ours_s, 2),
        "speedup": round(plain_s / ours_s, 2),
        "cosine_min": round(float(cos.min()), 5),
        "cosine_mean": round(float(cos.mean()), 5),
    }
    print(json.dumps(result, indent=2))
    if args.json:
        with open(args.json, "w") as handle:
            json.dump(result, handle, indent=2)


if __name__ == "__main__":
    main()
