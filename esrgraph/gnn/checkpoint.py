"""Per-epoch checkpoints that let an interrupted pretraining resume bit for bit.

A checkpoint is a pair: ``epoch-NNNNN.pt`` (plain state dicts and RNG state
tensors, loadable with ``torch.load(..., weights_only=True)``) and
``checkpoint.json`` (epoch, early-stopping state, history, the scalar parts
of the RNG states, and the sha256 of the ``.pt`` file). The ``.pt`` file is
written first and the JSON, which points to it, replaces the old one last, so
an interruption at any moment leaves a consistent pair.
"""

from __future__ import annotations

import io
import logging
import random
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..artifacts import atomic_write_bytes, read_json, sha256_file, write_json
from ..errors import EsrError

log = logging.getLogger(__name__)

INDEX = "checkpoint.json"


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)  # also seeds every CUDA device


def rng_state() -> tuple[dict[str, Any], dict[str, Any]]:
    """(tensors, JSON scalars) capturing the torch, CUDA, numpy and python generators."""
    version, words, gauss_next = random.getstate()
    kind, keys, pos, has_gauss, cached = np.random.get_state()
    tensors = {
        "torch": torch.get_rng_state(),
        "numpy_keys": torch.from_numpy(np.asarray(keys, dtype=np.int64)),
        "python_words": torch.tensor(words, dtype=torch.int64),
    }
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        tensors["cuda"] = torch.cuda.get_rng_state_all()
    scalars = {"numpy": [kind, int(pos), int(has_gauss), float(cached)], "python": [version, gauss_next]}
    return tensors, scalars


def set_rng_state(tensors: dict[str, Any], scalars: dict[str, Any]) -> None:
    torch.set_rng_state(tensors["torch"])
    if "cuda" in tensors and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(tensors["cuda"])
    kind, pos, has_gauss, cached = scalars["numpy"]
    np.random.set_state((kind, tensors["numpy_keys"].numpy().astype(np.uint32), pos, has_gauss, cached))
    version, gauss_next = scalars["python"]
    random.setstate((version, tuple(int(w) for w in tensors["python_words"].tolist()), gauss_next))


class CheckpointStore:
    """Checkpoints of one training (``identity``: a hash of its settings and inputs) in ``folder``."""

    def __init__(self, folder: Path, identity: str):
        self.folder = Path(folder)
        self.identity = identity

    def save(self, epoch: int, states: dict[str, Any], progress: dict[str, Any]) -> None:
        """``states``: name -> state dict (model, optimizer, ...); ``progress``: JSON-serialisable."""
        tensors, scalars = rng_state()
        buffer = io.BytesIO()
        torch.save({**states, "rng": tensors}, buffer)
        name = f"epoch-{epoch:05d}.pt"
        atomic_write_bytes(self.folder / name, buffer.getvalue())
        write_json(self.folder / INDEX, {"identity": self.identity, "epoch": epoch, "file": name,
                                         "sha256": sha256_file(self.folder / name), "rng": scalars,
                                         "progress": progress})
        for old in self.folder.glob("epoch-*.pt"):
            if old.name != name:
                old.unlink(missing_ok=True)

    def exists(self) -> bool:
        """Whether any checkpoint is here (of this training or another)."""
        return self._index() is not None

    def latest_epoch(self) -> int | None:
        """Epoch of this training's latest checkpoint, None when there is none."""
        index = self._index()
        return index["epoch"] if index and index.get("identity") == self.identity else None

    def load(self) -> tuple[dict[str, Any], dict[str, Any]]:
        """(state dicts, progress) of the latest checkpoint; restores every RNG state."""
        index = self._index()
        if index is None:
            raise EsrError(f"{self.folder}: no checkpoint to resume from")
        if index.get("identity") != self.identity:
            raise EsrError(f"{self.folder / INDEX}: the checkpoint was made with other gnn settings or inputs")
        path = self.folder / index["file"]
        if not path.is_file() or sha256_file(path) != index["sha256"]:
            raise EsrError(f"{path}: checkpoint file missing or changed")
        try:
            states = torch.load(path, map_location="cpu", weights_only=True)
        except Exception as exc:  # torch raises several kinds for a damaged file
            raise EsrError(f"{path}: cannot read the checkpoint ({exc})") from None
        set_rng_state(states.pop("rng"), index["rng"])
        return states, index["progress"]

    def clear(self) -> None:
        shutil.rmtree(self.folder, ignore_errors=True)

    def _index(self) -> dict | None:
        path = self.folder / INDEX
        if not path.is_file():
            return None
        try:
            return read_json(path)
        except (OSError, ValueError):
            log.warning("%s: unreadable checkpoint index, ignored", path)
            return None
