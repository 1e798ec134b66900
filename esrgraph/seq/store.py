"""A trained ``seq`` stage folder: writing what rebuilds a model, and loading models back.

``model.json`` holds the model's settings and the shapes of the tables it was
built from; ``model-seed<S>.pt`` each seed's weights. Loading needs neither
the earlier stages nor DGL: every table is restored from the state_dict.
"""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path

import torch

from ..artifacts import read_json
from ..config_schema import build
from ..errors import InputError
from ..training.checkpoint import INDEX, load_state
from .config import SeqConfig
from .model import SeqRecommender

SPEC = "model.json"
MODEL_PREFIX = "model-seed"


def model_spec(seq: SeqConfig, num_items: int, shapes: dict[str, list[int] | None]) -> dict:
    """The shapes the model was built with (:func:`~esrgraph.seq.build.model_shapes`); its tables are
    restored from the state_dict."""
    return {"seq": asdict(seq), "num_items": num_items, "shapes": shapes}


def load_model(folder: Path, seed: int, device: torch.device | str = "cpu") -> SeqRecommender:
    """Rebuild the recommender of ``seed`` from ``model.json`` and its state_dict, in eval mode."""
    folder = Path(folder)
    try:
        spec = read_json(folder / SPEC)
    except (OSError, ValueError) as exc:
        raise InputError(
            folder / SPEC, f"cannot read the model description ({exc}); run esr train-seq --force"
        ) from None
    seq = build(SeqConfig, spec["seq"], "seq.")
    empty = {name: torch.zeros(shape) if shape else None for name, shape in spec["shapes"].items()}
    model = SeqRecommender(seq, spec["num_items"], **empty)
    model.load_state_dict(load_state(model_file(folder, seed)))
    return model.to(device).eval()


def model_file(folder: Path, seed: int) -> Path:
    """A seed's weights, in a finished stage folder."""
    return Path(folder) / f"{MODEL_PREFIX}{seed}.pt"


def trained_seeds(folder: Path) -> list[int]:
    return sorted(int(p.stem.removeprefix(MODEL_PREFIX)) for p in Path(folder).glob(f"{MODEL_PREFIX}*.pt"))


def history_file(folder: Path, seed: int) -> Path:
    """A seed's validation and loss per epoch, in a finished stage folder."""
    return Path(folder) / f"history-seed{seed}.json"


def histories(folder: Path) -> dict[int, list[dict]]:
    return {seed: json.loads(history_file(folder, seed).read_text()) for seed in trained_seeds(folder)}


def seed_checkpoints(root: Path, seed: int) -> Path:
    """The checkpoint store of one seed's training, under the stage's checkpoints folder."""
    return Path(root) / f"seed-{seed}"


def training_histories(root: Path) -> dict[int, list[dict]]:
    """seed -> the history so far of every seed whose training left a checkpoint under ``root``."""
    found = {}
    for index in Path(root).glob(f"seed-*/{INDEX}"):
        progress = read_json(index).get("progress") or {}
        found[int(index.parent.name.removeprefix("seed-"))] = progress.get("history") or []
    return found
