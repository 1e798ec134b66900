"""The prepared dataset on disk: ``dataset.npz`` (arrays), ``ids.json``, ``item_meta.jsonl``, ``stats.json``."""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
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


class ItemMetaFile(Sequence):
    """``item_meta.jsonl`` read on first use: training and evaluation never read the metadata, which at
    a million items was 0.9 GiB of Python objects held through every stage that loads the dataset."""

    def __init__(self, path: Path):
        self.path = path
        self._records: list | None = None

    @property
    def records(self) -> list:
        if self._records is None:
            self._records = self._read()
        return self._records

    def _read(self) -> list:
        try:
            lines = self.path.read_text(encoding="utf-8").splitlines()
        except (OSError, ValueError) as exc:
            raise InputError(self.path, f"cannot read it ({exc}); run esr prepare again with --force") from None
        records = []
        for number, line in enumerate(lines, 1):
            try:
                records.append(json.loads(line))
            except ValueError as exc:
                raise InputError(
                    self.path, f"not a JSON record ({exc}); run esr prepare again with --force", line=number
                ) from None
        return records

    def __len__(self) -> int:
        return len(self.records)

    def __getitem__(self, index):
        return self.records[index]

    def __iter__(self) -> Iterator:
        return iter(self.records)

    def __eq__(self, other) -> bool:
        return isinstance(other, Sequence) and list(self) == list(other)

    __hash__ = None  # mutable-sequence semantics, as the list it stands for


def load_dataset(stage_dir: Path) -> Dataset:
    try:
        arrays = np.load(stage_dir / "dataset.npz")
        ids = read_json(stage_dir / "ids.json")
        stats = read_json(stage_dir / "stats.json")
        (stage_dir / "item_meta.jsonl").stat()  # read on first use, but missing is an error now
    except (OSError, ValueError) as exc:
        raise InputError(stage_dir, f"cannot load the prepared dataset ({exc}); run it again with --force") from None
    item_meta = ItemMetaFile(stage_dir / "item_meta.jsonl")
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
