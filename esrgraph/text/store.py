"""The embed stage's artifacts, by name, and reading them back with damaged files named."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..errors import InputError

ITEM_LLM, ITEM_PCA, USER_LLM, SIMILAR_USERS, SIMILAR_SCORES = ARTIFACTS = (
    "item_llm.npy",
    "item_pca.npy",
    "user_llm.npy",
    "similar_users.npy",
    "similar_scores.npy",
)


def load_array(folder: Path, name: str) -> np.ndarray:
    """One embed artifact; a missing or damaged file is an input error naming it."""
    path = Path(folder) / name
    try:
        return np.load(path)
    except (OSError, ValueError, EOFError) as exc:
        raise InputError(path, f"cannot read it ({exc}); run esr embed --force") from None


def load_embeddings(folder: Path) -> dict[str, np.ndarray]:
    return {name.removesuffix(".npy"): load_array(folder, name) for name in ARTIFACTS}
