"""The gnn stage's artifacts by name, and reading them back (no DGL, no model code)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..artifacts import read_json
from ..errors import InputError

EMBEDDINGS = "item_graph.npy"
PROBE = "probe.json"
HISTORY = "history.json"


def load_item_graph(folder: Path) -> np.ndarray:
    """The pretrained item embeddings ``[N + 1, d]`` (row 0 = padding)."""
    path = Path(folder) / EMBEDDINGS
    try:
        return np.load(path)
    except (OSError, ValueError, EOFError) as exc:
        raise InputError(path, f"cannot read the graph item embeddings ({exc}); run esr pretrain-gnn --force") from None


def load_probe(folder: Path) -> dict:
    return read_json(Path(folder) / PROBE)
