"""Ranking vectors made elsewhere: a user and an item table scored by dot products.

A model outside this package (or a test, or a benchmark) that yields one vector
per user and per item is evaluated by exactly the code that ranks esrgraph's own
models, under both protocols.
"""

from __future__ import annotations

import torch

from ..errors import EsrError


class VectorScorer:
    """Scores from fixed vectors, user [U, d] by item [N + 1, d] dot products (row 0 of the items is
    padding): vectors a model outside this package produced, ranked under the same protocols.
    Inputs and outputs as :class:`~.protocols.Scorer`; the "history" it is handed is ignored."""

    appended_tokens = 0

    def __init__(self, users: torch.Tensor, items: torch.Tensor):
        if users.shape[1] != items.shape[1]:
            raise EsrError(f"user vectors are {users.shape[1]} wide and item vectors {items.shape[1]}; they must match")
        self.users, self.items = users, items

    def user_vectors(
        self, items: torch.Tensor, lengths: torch.Tensor, users: torch.Tensor | None = None
    ) -> torch.Tensor:
        return self.users[users.to(self.users.device)]

    def item_tables(self) -> torch.Tensor:
        return self.items

    def score_all(
        self, users: torch.Tensor, tables: torch.Tensor | None = None, columns: slice | None = None
    ) -> torch.Tensor:
        tables = self.items if tables is None else tables
        scores = users @ (tables if columns is None else tables[columns]).T
        if columns is None or columns.start in (0, None):
            scores[:, 0] = -float("inf")  # padding
        return scores

    def score_items(self, users: torch.Tensor, items: torch.Tensor) -> torch.Tensor:
        return (users.unsqueeze(1) * self.items[items]).sum(-1)
