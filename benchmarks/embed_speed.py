"""Texts per second of `esr embed`'s backends, their cosine to fp32, and user vectors from items against user texts.

Encoders, all with the same model, token limit, token-sorted batches and
thread count:

* `fp32`: the torch path in fp32, the reference for the cosines;
* `torch`: the torch path as `esr embed` ran it before `embed.backend` (bf16
  autocast where the chip has it);
* `openvino`: `embed.backend=openvino` (bf16 where the chip has it).

Texts are a random sample of each dataset's item and user texts, built as
`esr embed` builds them. Speed is measured on the same texts, the encoders
alternating for `--rounds` rounds, so that a machine shared with other jobs
slows each about equally: the result is each round's ratio to `torch` (median,
min, max). `--users` also compares `embed.users: items` with encoded user
texts on every user of each dataset: overlap@10 is the mean share of a user's
10 most similar users that both lists hold. Usage:

    python benchmarks/embed_speed.py [CONFIG ...] [--texts 800] [--speed-texts 400] [--rounds 3]
        [--threads N] [--users] [--json out.json]

CONFIG defaults to the bundled data (amazon-scientific).
"""

from __future__ import annotations

import argparse
import json
import logging
import platform
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from esrgraph.config import load_config
from esrgraph.data.dataset import build_dataset, categories_are_path
from esrgraph.text.cache import EmbeddingCache, encode_cached
from esrgraph.text.encoder import TextEncoder
from esrgraph.text.similar import top_k_similar
from esrgraph.text.templates import item_texts, user_texts
from esrgraph.text.users import item_average_users

MAX_TOKENS = 256


def dataset_texts(cfg):
    ds = build_dataset(cfg.dataset)
    path = categories_are_path(ds, cfg.dataset.metadata.categories_are_path)
    items = item_texts(ds, cfg.embed.item_template, path, MAX_TOKENS)
    users = user_texts(ds, cfg.embed.user_item_template, cfg.embed.user_separator, path, MAX_TOKENS, items)
    return ds, items, users


def sample(items: list[str], users: list[str], count: int, seed: int = 0) -> list[str]:
    """``count`` texts, items and users in their shares of the dataset's texts."""
    rng = np.random.default_rng(seed)
    n_items = int(round(count * len(items) / (len(items) + len(users))))
    pick = lambda texts, n: [texts[i] for i in rng.choice(len(texts), size=min(n, len(texts)), replace=False)]
    return pick(items, n_items) + pick(users, count - n_items)


def cosines(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return (a * b).sum(1) / np.linalg.norm(a, axis=1) / np.linalg.norm(b, axis=1)


def speed(encoders: dict, texts: list[str], rounds: int, batch_size: int) -> dict:
    """texts/s per round of each encoder, the encoders alternating within each round."""
    per_round = {name: [] for name in encoders}
    for _ in range(rounds):
        for name, encoder in encoders.items():
            start = time.perf_counter()
            encoder.encode(texts, batch_size=batch_size)
            per_round[name].append(len(texts) / (time.perf_counter() - start))
    base = np.array(per_round["torch"])
    out = {}
    for name, rates in per_round.items():
        ratio = np.array(rates) / base
        out[name] = {
            "texts_per_s": [round(r, 1) for r in rates],
            "ratio_to_torch": {
                "median": round(float(np.median(ratio)), 2),
                "min": round(float(ratio.min()), 2),
                "max": round(float(ratio.max()), 2),
            },
        }
    return out


def user_overlap(ds, items: list[str], users: list[str], encoder: TextEncoder, cache, k: int = 10) -> dict:
    """overlap@k of the similar users found from encoded user texts and from the users' items' vectors."""
    item_vecs = encode_cached(encoder, items, 16, cache, "item texts")
    text_users = encode_cached(encoder, users, 16, cache, "user texts")
    by_text = top_k_similar(text_users, k)[0]
    by_items = top_k_similar(item_average_users(ds, item_vecs), k)[0]
    overlap = np.array([len(set(a) & set(b)) / k for a, b in zip(by_text, by_items)])
    return {
        "users": int(ds.num_users),
        f"overlap@{k}": round(float(overlap.mean()), 4),
        "users_with_no_common_neighbour": round(float((overlap == 0).mean()), 4),
        "chance": round(k / max(ds.num_users - 1, 1), 6),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("configs", nargs="*", default=[None])
    parser.add_argument("--texts", type=int, default=800, help="texts sampled per dataset for the cosines")
    parser.add_argument("--speed-texts", type=int, default=400, help="of those, how many are timed")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--threads", type=int, help="torch and OpenVINO threads (default: torch's)")
    parser.add_argument("--users", action="store_true", help="also compare embed.users items against text")
    parser.add_argument("--cache", help="text cache folder for --users (default: a temporary one)")
    parser.add_argument("--json", help="also write the result here")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    if args.threads:
        torch.set_num_threads(args.threads)
    models = Path(tempfile.mkdtemp(prefix="esr-models-"))
    encoders = {
        "fp32": TextEncoder.load("bundled", "cpu", "fp32", MAX_TOKENS, "torch"),
        "torch": TextEncoder.load("bundled", "cpu", "auto", MAX_TOKENS, "torch"),
        "openvino": TextEncoder.load("bundled", "cpu", "auto", MAX_TOKENS, "openvino", models),
    }
    texts, datasets, overlaps = [], {}, {}
    for config in args.configs:
        cfg = load_config(config)
        ds, items, users = dataset_texts(cfg)
        texts += sample(items, users, args.texts)
        datasets[cfg.dataset.name] = {"items": len(items), "users": len(users)}
        if args.users:
            folder = Path(args.cache or tempfile.mkdtemp(prefix="esr-text-"))
            encoder = encoders["openvino"]
            cache = EmbeddingCache(folder, encoder.cache_key(), encoder.dim)
            overlaps[cfg.dataset.name] = user_overlap(ds, items, users, encoder, cache)
    reference = encoders["fp32"].encode(texts)
    agreement = {}
    for name in ("torch", "openvino"):
        cos = cosines(encoders[name].encode(texts), reference)
        agreement[name] = {"min": round(float(cos.min()), 5), "mean": round(float(cos.mean()), 5)}
    timed = texts[:: max(1, len(texts) // args.speed_texts)][: args.speed_texts]
    timed_encoders = {name: encoders[name] for name in ("torch", "openvino")}
    tokens = encoders["fp32"].token_counts(texts)
    result = {
        "datasets": datasets,
        "texts": len(texts),
        "timed_texts": len(timed),
        "mean_tokens": round(float(tokens.mean()), 1),
        "max_tokens": MAX_TOKENS,
        "batch_size": 16,
        "precision": encoders["torch"].precision,
        "threads": torch.get_num_threads(),
        "cpu": platform.processor() or platform.machine(),
        "cosine_to_fp32": agreement,
        "speed": speed(timed_encoders, timed, args.rounds, 16),
    }
    if overlaps:
        result["similar_users_items_vs_text"] = overlaps
    print(json.dumps(result, indent=2))
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
