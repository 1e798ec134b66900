"""Shared fixtures: a tiny generated dataset in every supported format, and the real data when present."""

from __future__ import annotations

import csv
import gzip
import json
import os
from pathlib import Path

import pytest
import torch

from esrgraph.config import load_config

# The commands the tests run in-process take this process's thread count as it is: measuring the
# free cores at every command would change it from test to test.
os.environ.setdefault("OMP_NUM_THREADS", str(torch.get_num_threads()))

SHARED_DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
needs_shared = pytest.mark.skipif(not SHARED_DATA.is_dir(), reason="../shared/data is not present")

# user -> chronological items (item ids are integers 1..8); user "u9" has only 2 items and is dropped.
TINY_SEQUENCES = {
    "u1": [1, 2, 3, 4, 5],
    "u2": [2, 3, 4],
    "u3": [5, 6, 7, 8, 1, 2],
    "u4": [1, 3, 5, 7],
    "u5": [2, 4, 6, 8, 3],
    "u6": [8, 7, 6],
    "u7": [3, 1, 2, 5],
    "u8": [6, 5, 4, 3, 2, 1],
    "u9": [1, 2],
}
TINY_ITEMS = {
    1: {
        "title": "Red nail polish",
        "brand": "OPI",
        "categories": "Beauty,Makeup,Nails",
        "price": "$5.99",
        "description": "Glossy red.",
    },
    2: {"title": "Blue nail polish", "brand": "OPI", "categories": "Beauty,Makeup,Nails", "price": "$6.49"},
    3: {"title": "Face cream", "brand": "L&#39;Oreal", "categories": "Beauty,Skin Care,Face", "price": "12.00"},
    4: {"title": "Night cream", "brand": "L&#39;Oreal", "categories": "Beauty,Skin Care,Face", "price": ""},
    5: {"title": "Shampoo", "brand": "Unknown", "categories": "Beauty,Hair Care", "price": "$3.00 - $5.00"},
    6: {"title": "Conditioner", "brand": "Dove", "categories": "Beauty,Hair Care"},
    7: {"title": "Lip balm", "categories": "Beauty,Makeup,Lips", "price": "2.50"},
    8: {"title": "Eyeliner", "brand": "Maybelline", "categories": "Beauty,Makeup,Eyes", "price": "$7.00"},
    99: {"title": "Never bought", "brand": "Nobody"},
}


def write_tiny(folder: Path) -> dict[str, Path]:
    """Write the tiny dataset in every format; returns the paths by format name."""
    folder.mkdir(parents=True, exist_ok=True)
    paths = {}
    paths["json"] = folder / "interactions.json"
    paths["json"].write_text(json.dumps(TINY_SEQUENCES))
    paths["sequences"] = folder / "sequences.txt"
    paths["sequences"].write_text("".join(f"{u} {' '.join(map(str, s))}\n" for u, s in TINY_SEQUENCES.items()))
    paths["inter"] = folder / "inter.txt"
    paths["inter"].write_text("".join(f"{u} {i}\n" for u, s in TINY_SEQUENCES.items() for i in s))
    # CSV rows are shuffled across users and given times so that sorting is needed.
    rows = [(u, i, 1000 + 10 * t) for u, s in TINY_SEQUENCES.items() for t, i in enumerate(s)]
    rows.sort(key=lambda r: (-r[2], r[0]))
    paths["csv"] = folder / "interactions.csv"
    with open(paths["csv"], "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["user", "item", "timestamp", "rating"])
        writer.writerows([(u, i, t, 5) for u, i, t in rows])
    paths["reviews"] = folder / "reviews.json.gz"
    with gzip.open(paths["reviews"], "wt") as handle:
        for u, i, t in rows:
            handle.write(json.dumps({"reviewerID": u, "asin": f"A{i:03d}", "unixReviewTime": t, "overall": 5.0}) + "\n")
    paths["items_json"] = folder / "items.json"
    paths["items_json"].write_text(json.dumps({str(k): v for k, v in TINY_ITEMS.items()}))
    paths["items_jsonl"] = folder / "meta.json.gz"
    with gzip.open(paths["items_jsonl"], "wt") as handle:
        for k, v in TINY_ITEMS.items():
            meta = dict(v, asin=f"A{k:03d}")
            if "categories" in meta:
                meta["category"] = meta.pop("categories").split(",")
            handle.write(json.dumps(meta) + "\n")
    paths["items_csv"] = folder / "items.csv"
    with open(paths["items_csv"], "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["item_id", "title", "brand", "price", "categories"])
        for k, v in TINY_ITEMS.items():
            writer.writerow(
                [
                    k,
                    v.get("title", ""),
                    v.get("brand", ""),
                    v.get("price", ""),
                    v.get("categories", "").replace(",", "|"),
                ]
            )
    return paths


@pytest.fixture
def one_thread():
    """Small graphs and models run about as fast on one thread, without stalling beside other jobs."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture
def tiny(tmp_path: Path) -> dict[str, Path]:
    return write_tiny(tmp_path / "data")


def tiny_overrides(paths: dict[str, Path], root: Path, fmt: str = "json") -> list[str]:
    """Overrides that point a config at the tiny JSON dataset."""
    return [
        "dataset.name=tiny",
        f"dataset.interactions.path={paths[fmt]}",
        f"dataset.metadata.path={paths['items_json']}",
        f"run.root={root}",
    ]


# Stages and a model small enough for a command-line test to run them in seconds on the tiny dataset.
TINY_MODEL = [
    "seq.hidden_size=8",
    "seq.max_length=10",
    "eval.sampled_negatives=3",
    "embed.max_tokens=32",
    "embed.similar_users=2",
    "gnn.hidden=8",
    "gnn.heads=2",
    "gnn.projection=8",
    "run.name=r",
]


def as_flags(overrides: list[str]) -> list[str]:
    """``KEY=VALUE`` overrides as a command's ``-o`` flags."""
    return [flag for o in overrides for flag in ("-o", o)]


def tiny_flags(paths: dict[str, Path], root: Path, *extra: str) -> list[str]:
    """``-o`` flags for a command: the tiny dataset, the tiny model, then ``extra`` (later flags win)."""
    return as_flags(tiny_overrides(paths, root) + TINY_MODEL + list(extra))


@pytest.fixture
def tiny_config(tiny, tmp_path):
    def make(*extra: str):
        return load_config(None, tiny_overrides(tiny, tmp_path / "runs") + list(extra))

    return make


def make_dataset(sequences: list[list[int]], num_items: int, tail_share: float = 0.8):
    """A canonical Dataset straight from item-id sequences (ids 1..num_items), for model tests."""
    from esrgraph.data.dataset import from_sequences

    return from_sequences(sequences, num_items, tail_share)


def cyclic_sequences(users: int, items: int, seed: int = 0, min_len: int = 4, max_len: int = 12) -> list[list[int]]:
    """Sequences that walk the items in order (i -> i + 1, wrapping): a pattern a model can learn."""
    import numpy as np

    rng = np.random.default_rng(seed)
    out = []
    for _ in range(users):
        start, length = rng.integers(1, items + 1), rng.integers(min_len, max_len + 1)
        out.append([int((start - 1 + j) % items) + 1 for j in range(length)])
    return out


def cluster_sequences(users: int, items: int, cluster: int = 5, seed: int = 0) -> list[list[int]]:
    """Each user stays inside one block of ``cluster`` items: learnable from context in any direction."""
    import numpy as np

    rng = np.random.default_rng(seed)
    out = []
    for _ in range(users):
        block = rng.integers(0, items // cluster)
        length = rng.integers(4, 9)
        out.append([int(block * cluster + rng.integers(0, cluster)) + 1 for _ in range(length)])
    return out


def synthetic_trainer(
    folder: Path,
    sequences: list[list[int]],
    num_items: int,
    *overrides: str,
    seed: int = 0,
    tail_share: float = 0.8,
    build_seed: int | None = None,
):
    """A recommender and its trainer on generated sequences, built as the seq stage builds them
    (``esrgraph.seq.build``): the config's defaults with ``overrides`` on top."""
    import numpy as np

    from esrgraph.seq.build import RecommenderInputs, build_recommender, build_trainer
    from esrgraph.training.checkpoint import CheckpointStore

    small = [
        "seq.variant=plain",
        "seq.hidden_size=16",
        "seq.max_length=20",
        "train.batch_size=16",
        "train.lr=1e-2",
        "train.patience=50",
        "eval.sampled_negatives=20",
        "train.eval_batch_size=128",
        "train.device=cpu",
    ]
    cfg = load_config(None, small + list(overrides))
    inputs = RecommenderInputs(make_dataset(sequences, num_items, tail_share))
    text = np.random.default_rng(7).normal(size=(num_items + 1, 24)).astype(np.float32)  # stand-in LLM rows
    text[0] = 0
    inputs.llm, inputs.pca = text, text[:, : cfg.seq.hidden_size] * 0.05
    model = build_recommender(cfg, inputs, seed if build_seed is None else build_seed)
    return build_trainer(cfg, inputs, model, CheckpointStore(folder, "test"))
