"""Per-epoch checkpoints that let an interrupted training resume bit for bit.

A checkpoint is a pair: ``epoch-NNNNN.pt`` (plain state dicts and random
states as tensors, loadable with ``torch.load(..., weights_only=True)``) and
``checkpoint.json`` (epoch, the training's progress, the scalar parts of the
random states, the identity of the training and the sha256 of the ``.pt``
file). The ``.pt`` file is written first and the JSON that points to it
replaces the old one last, so an interruption at any moment leaves a
consistent pair, and a damaged or foreign file is named, never loaded.

Besides the global generators (python, numpy, torch, CUDA) a training may
hand in generators of its own (``torch.Generator`` or
``numpy.random.Generator``), which are saved and restored with the rest.
``best.pt`` holds the best model so far, written atomically on its own.
"""

from __future__ import annotations

import logging
import random
import shutil
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..artifacts import atomic_write, read_json, sha256_file, write_json
from ..errors import EsrError

log = logging.getLogger(__name__)

INDEX = "checkpoint.json"
BEST = "best.pt"
Generators = Mapping[str, "torch.Generator | np.random.Generator"]


def save_state(path: Path, data: dict) -> None:
    """``torch.save``, written atomically (an interruption leaves the previous file whole)."""
    atomic_write(path, lambda handle: torch.save(data, handle))


def checkpoint_folder(stage_dir: Path) -> Path:
    """Where a stage's training keeps its checkpoints until the stage completes: beside the stage folder."""
    return stage_dir.with_name(stage_dir.name + ".checkpoints")


def load_state(path: Path, device: torch.device | str = "cpu") -> dict:
    """``torch.load(weights_only=True)`` with a damaged or missing file named in one line."""
    try:
        return torch.load(path, map_location=device, weights_only=True)
    except FileNotFoundError:
        raise EsrError(f"{path}: not found") from None
    except Exception as exc:  # torch raises several kinds for a truncated or foreign file
        raise EsrError(f"{path}: cannot be read as a checkpoint ({_first_line(exc)}); it is damaged") from None


def rng_state(generators: Generators | None = None) -> tuple[dict[str, Any], dict[str, Any]]:
    """(tensors, JSON scalars) capturing the global generators and ``generators``."""
    version, words, gauss_next = random.getstate()
    kind, keys, pos, has_gauss, cached = np.random.get_state()
    tensors: dict[str, Any] = {
        "torch": torch.get_rng_state(),
        "numpy_keys": torch.from_numpy(np.asarray(keys, dtype=np.int64)),
        "python_words": torch.tensor(words, dtype=torch.int64),
    }
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        tensors["cuda"] = torch.cuda.get_rng_state_all()
    scalars: dict[str, Any] = {
        "numpy": [kind, int(pos), int(has_gauss), float(cached)],
        "python": [version, gauss_next],
        "generators": {},
    }
    for name, gen in (generators or {}).items():
        if isinstance(gen, torch.Generator):
            tensors[f"generator:{name}"] = gen.get_state()
        else:
            scalars["generators"][name] = gen.bit_generator.state
    return tensors, scalars


def set_rng_state(tensors: dict[str, Any], scalars: dict[str, Any], generators: Generators | None = None) -> None:
    torch.set_rng_state(tensors["torch"])
    if "cuda" in tensors and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(tensors["cuda"])
    kind, pos, has_gauss, cached = scalars["numpy"]
    np.random.set_state((kind, tensors["numpy_keys"].numpy().astype(np.uint32), pos, has_gauss, cached))
    version, gauss_next = scalars["python"]
    random.setstate((version, tuple(int(w) for w in tensors["python_words"].tolist()), gauss_next))
    for name, gen in (generators or {}).items():
        if isinstance(gen, torch.Generator):
            gen.set_state(tensors[f"generator:{name}"])
        else:
            gen.bit_generator.state = scalars["generators"][name]


class CheckpointStore:
    """Checkpoints of one training (``identity``: a hash of its settings and inputs) in ``folder``."""

    def __init__(self, folder: Path, identity: str):
        self.folder = Path(folder)
        self.identity = identity

    def save(
        self,
        epoch: int,
        states: dict[str, Any],
        progress: dict[str, Any],
        generators: Generators | None = None,
        name: str | None = None,
    ) -> None:
        """``states``: name -> state dict (model, optimizer, ...); ``progress``: JSON-serialisable.
        ``epoch``: the epochs completed; ``name``: the file's (``epoch-*.pt``), for one inside an epoch."""
        tensors, scalars = rng_state(generators)
        name = name or f"epoch-{epoch:05d}.pt"
        save_state(self.folder / name, {**states, "rng": tensors})
        write_json(
            self.folder / INDEX,
            {
                "identity": self.identity,
                "epoch": epoch,
                "file": name,
                "sha256": sha256_file(self.folder / name),
                "rng": scalars,
                "progress": progress,
            },
        )
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

    def load(self, generators: Generators | None = None) -> tuple[dict[str, Any], dict[str, Any]]:
        """(state dicts, progress) of the latest checkpoint; restores every random state."""
        index = self._index()
        if index is None:
            raise EsrError(f"{self.folder}: no checkpoint to resume from")
        if index.get("identity") != self.identity:
            raise EsrError(
                f"{self.folder / INDEX}: the checkpoint was made with other settings or inputs; "
                "run without --resume to start over"
            )
        path = self.folder / index["file"]
        if not path.is_file() or sha256_file(path) != index["sha256"]:
            raise EsrError(f"{path}: checkpoint file missing or damaged; run without --resume to start over")
        states = load_state(path)
        set_rng_state(states.pop("rng"), index["rng"], generators)
        return states, index["progress"]

    def verify(self) -> str | None:
        """What is wrong with this training's latest checkpoint, naming the file; None when it is whole
        (or there is none). Checked before a resumed training builds anything on it."""
        index = self._index()
        if index is None or index.get("identity") != self.identity:
            return None
        path = self.folder / str(index.get("file"))
        if not path.is_file():
            return f"{path}: checkpoint file missing"
        if sha256_file(path) != index.get("sha256"):
            return f"{path}: checkpoint file damaged (its sha256 differs from the one in {INDEX})"
        return None

    def save_best(self, state: dict[str, torch.Tensor]) -> None:
        save_state(self.folder / BEST, state)

    def best_path(self) -> Path:
        return self.folder / BEST

    def start(self) -> None:
        """Begin a new training here: whatever an earlier one left is removed."""
        self.clear()
        self.folder.mkdir(parents=True, exist_ok=True)

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


def _first_line(exc: Exception) -> str:
    text = str(exc).strip().splitlines()
    return text[0] if text else type(exc).__name__
