"""Baselines every trained model must beat: the floor printed beside every metrics table.

``PopularityScorer`` ranks items by how often they occur in the training
sequences (validation and test items are never counted), the same ranking for
every user. It offers the scorer contract of :mod:`.protocols`, so it is ranked
by exactly the code that ranks the models. Ties in popularity are broken by a
fixed random order rather than counted against the target: many rare items
share a count, and a floor that loses every tie would sit below what ranking
by popularity really gives.
"""

from __future__ import annotations

import numpy as np
import torch

TIE_SEED = 0


class FixedScores:
    """The same score for an item whatever the user: ``table`` [N + 1, 1] (row 0 padding, -inf).
    Inputs and outputs as :class:`~.protocols.Scorer`."""

    appended_tokens = 0

    def __init__(self, table: torch.Tensor):
        self.table = table

    def user_vectors(
        self, items: torch.Tensor, lengths: torch.Tensor, users: torch.Tensor | None = None
    ) -> torch.Tensor:
        return torch.ones((len(lengths), 1), dtype=self.table.dtype, device=self.table.device)

    def item_tables(self) -> torch.Tensor:
        return self.table

    def fixed_scores(self) -> torch.Tensor:
        """[N + 1]: every item's score, whatever the user (full ranking then needs no score matrix)."""
        return self.table[:, 0]

    def score_all(
        self, users: torch.Tensor, tables: torch.Tensor | None = None, columns: slice | None = None
    ) -> torch.Tensor:
        tables = self.table if tables is None else tables
        return users @ (tables if columns is None else tables[columns]).T

    def score_items(self, users: torch.Tensor, items: torch.Tensor) -> torch.Tensor:
        return users * self.table[items, 0]


class PopularityScorer(FixedScores):
    """Scores item i by its training popularity, ties broken by a fixed random order."""

    def __init__(self, popularity: np.ndarray, device: torch.device | str = "cpu"):
        counts = np.asarray(popularity, dtype=np.float64)
        ties = np.random.default_rng(TIE_SEED).permutation(len(counts)) / (2.0 * len(counts))  # < 0.5
        scores = counts + ties
        scores[0] = -np.inf  # padding
        super().__init__(torch.from_numpy(scores).unsqueeze(1).to(device))


class RandomScorer(FixedScores):
    """Every item a fixed random score, the same for every user: the chance level of a protocol."""

    def __init__(self, num_items: int, seed: int = 0, device: torch.device | str = "cpu"):
        scores = torch.from_numpy(np.random.default_rng(seed).random(num_items + 1)).float()
        scores[0] = -float("inf")
        super().__init__(scores.unsqueeze(1).to(device))
