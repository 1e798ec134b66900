"""The prepared dataset on disk: ``dataset.npz`` (arrays), ``ids.json``, ``item_meta.jsonl``, ``stats.json``."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from ..artifacts import atomic_write_bytes, read_json, save_arrays, write_json
from ..errors import InputError
from .dataset import Dataset


def save_dataset(ds: Dataset, out_dir: Path) -> None:
    save_arrays(
        out_dir / "dataset.npz",
        offsets=ds.offsets,
        items=ds.items,
        item_popularity=ds.item_popularity,
        tail_items=ds.tail_items,
        tail_users=ds.tail_users,
        cold_items=ds.cold_items,
        cold_queries=ds.cold_queries,
    )
    write_json(out_dir / "ids.json", {"name": ds.name, "users": ds.user_ids, "items": ds.item_ids})
    lines = (json.dumps(m, ensure_ascii=False, sort_keys=True) for m in ds.item_meta)
    atomic_write_bytes(out_dir / "item_meta.jsonl", ("\n".join(lines) + "\n").encode())
    write_json(out_dir / "stats.json", ds.stats)


def load_dataset(stage_dir: Path) -> Dataset:
    try:
        arrays = np.load(stage_dir / "dataset.npz")
        ids = read_json(stage_dir / "ids.json")
        meta_text = (stage_dir / "item_meta.jsonl").read_text(encoding="utf-8")
        stats = read_json(stage_dir / "stats.json")
    except (OSError, ValueError) as exc:
        raise InputError(stage_dir, f"cannot load the prepared dataset ({exc}); run it again with --force") from None
    item_meta = [json.loads(line) for line in meta_text.splitlines()]
    return Dataset(
        ids["name"],
        ids["users"],
        ids["items"],
        arrays["offsets"],
        arrays["items"],
        item_meta,
        arrays["item_popularity"],
        arrays["tail_items"],
        arrays["tail_users"],
        stats,
        arrays["cold_items"] if "cold_items" in arrays else None,  # prepared before cold items existed: none
        arrays["cold_queries"] if "cold_queries" in arrays else None,
    )
