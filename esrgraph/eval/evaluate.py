"""Evaluating a trained recommender on one split under the configured protocols."""

from __future__ import annotations

import numpy as np
import torch

from ..data.sequences import SequenceData
from .config import EvalConfig
from .metrics import grouped_metrics
from .protocols import Scorer, rank_targets, sampled_negatives

# Seeds of the fixed user samples, one per split, so that validation and test draw different users.
SAMPLE_SEEDS = {"valid": 0, "test": 1}


def sample_users(num_users: int, limit: int | None, split: str) -> np.ndarray | None:
    """A fixed random sample of ``limit`` users in increasing order when there are more, else None (every user)."""
    if limit is None or num_users <= limit:
        return None
    return np.sort(np.random.default_rng(SAMPLE_SEEDS[split]).choice(num_users, limit, replace=False))


class Evaluator:
    """Holds the fixed sampled negatives of a split, so repeated evaluations reuse them."""

    def __init__(
        self,
        data: SequenceData,
        cfg: EvalConfig,
        batch_size: int,
        device: torch.device,
        valid_users: np.ndarray | None = None,
        test_users: np.ndarray | None = None,
    ):
        self.data = data
        self.cfg = cfg
        self.batch_size = batch_size
        self.device = device
        self.valid_users = valid_users  # the users each split ranks (None: every user)
        self.test_users = test_users
        self._negatives: dict[str, np.ndarray] = {}

    def negatives(self, split: str) -> np.ndarray:
        """The split's sampled negatives, a row for each of its users (:meth:`users`)."""
        if split not in self._negatives:
            self._negatives[split] = sampled_negatives(
                self.data, split, self.cfg.sampled_negatives, self.cfg.negative_seed, self.users(split)
            )
        return self._negatives[split]

    def users(self, split: str) -> np.ndarray | None:
        """The users ``split`` ranks (None: every user)."""
        return self.valid_users if split == "valid" else self.test_users

    def ranks(
        self, model: Scorer, split: str, protocol: str, encode_bf16: bool = False
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(users, targets, ranks) of ``split``'s targets, users in increasing order."""
        negatives = self.negatives(split) if protocol == "sampled" else None
        return rank_targets(
            model, self.data, split, protocol, self.batch_size, self.device, negatives, self.users(split), encode_bf16
        )

    def evaluate(
        self, model: Scorer, split: str, protocols: list[str] | None = None, encode_bf16: bool = False
    ) -> dict:
        """{protocol: {group: {metric: value, "users": n}}} for ``split``; ``encode_bf16`` as in
        :func:`~esrgraph.eval.protocols.rank_targets` (validation only: reported test metrics stay fp32)."""
        was_training = getattr(model, "training", False)
        if hasattr(model, "eval"):
            model.eval()
        try:
            out = {}
            for protocol in protocols or self.cfg.protocols:
                users, targets, ranks = self.ranks(model, split, protocol, encode_bf16)
                out[protocol] = grouped_metrics(
                    ranks, users, targets, self.data.tail_users.numpy(), self.data.tail_items.numpy(), self.cfg.ks
                )
            return out
        finally:
            if was_training:
                model.train()
