"""Turning user sequences into padded batches that are only as long as they need to be.

Sequences are right-padded with item 0 to the longest sequence of the batch
(not to ``max_length``), after keeping each sequence's most recent
``max_length`` items. With ``left_pad`` every sequence is left-padded to
``max_length`` instead, as the reference implementation did and as encoders
that read a fixed window need.

Splits (leave-one-out): a user's training sequence ``s`` is everything but the
last two items. Training inputs are ``s[:-1]`` with targets ``s[1:]``;
validation predicts the second-to-last item from ``s``; test predicts the last
item from everything before it.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import numpy as np
import torch

from .dataset import Dataset

# Items left off the end of a user's full sequence to give a split's inputs; the first of them is the
# split's target (leave-one-out: the last item is test, the one before it valid; train ends before valid).
_CUT = {"train": 2, "valid": 2, "test": 1}


@dataclass
class Batch:
    """A batch of users. ``items``: [B, T] inputs (0 = padding); ``lengths``: [B] real lengths."""

    users: torch.Tensor
    items: torch.Tensor
    lengths: torch.Tensor
    targets: torch.Tensor | None = None  # [B, T] next items (0 where no loss), or [B] for evaluation
    history: Batch | None = None  # the unmasked training sequences, where ``items`` hides some (masked-item training)

    def to(self, device: torch.device | str) -> Batch:
        move = lambda t: t.to(device, non_blocking=True) if t is not None else None
        history = self.history.to(device) if self.history is not None else None
        return Batch(move(self.users), move(self.items), move(self.lengths), move(self.targets), history)

    def rows(self, index: slice) -> Batch:
        pick = lambda t: t[index] if t is not None else None
        history = self.history.rows(index) if self.history is not None else None
        return Batch(pick(self.users), pick(self.items), pick(self.lengths), pick(self.targets), history)


class SequenceData:
    """Per-user sequences of one dataset, split leave-one-out, ready for batching."""

    def __init__(self, ds: Dataset, max_length: int, left_pad: bool = False):
        self.num_items = ds.num_items
        self.num_warm = ds.num_warm  # items 1..num_warm have interactions; cold items follow and are never targets
        self.max_length = max_length
        self.left_pad = left_pad
        self.full = [ds.sequence(u) for u in range(ds.num_users)]
        self.tail_users = torch.from_numpy(ds.tail_users.copy())
        self.tail_items = torch.from_numpy(ds.tail_items.copy())

    @property
    def num_users(self) -> int:
        return len(self.full)

    def train_sequence(self, user: int) -> np.ndarray:
        return self.full[user][: -_CUT["train"]]

    @functools.cached_property
    def train_lengths(self) -> np.ndarray:
        """[U] the length of each user's training sequence."""
        return np.array([max(len(seq) - _CUT["train"], 0) for seq in self.full], dtype=np.int64)

    def cold_batch(self, queries: np.ndarray, extra: int = 0) -> Batch:
        """The cold-item protocol's queries [Q, 3] (user, held-out item, items before it) as a batch:
        each user's history up to the held-out interaction, and the held-out item as target."""
        histories = [self.full[u][:cut] for u, _, cut in queries]
        items, lengths = self.pad(histories, extra)
        return Batch(torch.from_numpy(queries[:, 0].copy()), items, lengths, torch.from_numpy(queries[:, 1].copy()))

    def train_popularity(self) -> torch.Tensor:
        """[N + 1] interactions per item in the training sequences (row 0 padding: 0)."""
        counts = np.zeros(self.num_items + 1, dtype=np.int64)
        for seq in self.full:
            np.add.at(counts, seq[: -_CUT["train"]], 1)
        counts[0] = 0
        return torch.from_numpy(counts)

    def mean_training_targets(self) -> float:
        """Next-item targets a trainable user's training sequence holds on average, as training reads it
        (its most recent ``max_length`` items: every item after the first is a target)."""
        lengths = np.minimum(self.train_lengths[self.trainable_users()], self.max_length)
        return float(lengths.mean() - 1) if len(lengths) else 0.0

    def trainable_users(self) -> np.ndarray:
        """Users with at least one training position (a training sequence of two or more items)."""
        return np.array([u for u, seq in enumerate(self.full) if len(seq) >= 4], dtype=np.int64)

    # ------------------------------------------------------------------ batches

    def pad(self, sequences: list[np.ndarray], extra: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
        """Pad to the batch's longest sequence (or to max_length with reference padding)."""
        limit = self.max_length - extra
        cut = [s[-limit:] for s in sequences]
        lengths = np.array([len(s) for s in cut], dtype=np.int64)
        width = self.max_length - extra if self.left_pad else max(int(lengths.max()), 1)
        out = np.zeros((len(cut), width), dtype=np.int64)
        for row, seq in enumerate(cut):
            if len(seq):
                if self.left_pad:
                    out[row, width - len(seq) :] = seq
                else:
                    out[row, : len(seq)] = seq
        return torch.from_numpy(out), torch.from_numpy(lengths)

    def training_batch(self, users: np.ndarray) -> Batch:
        """Inputs ``s[:-1]`` and next-item targets ``s[1:]`` of each user's training sequence."""
        seqs = [self.train_sequence(u) for u in users]
        items, lengths = self.pad([s[:-1] for s in seqs])
        targets, _ = self.pad([s[1:] for s in seqs])
        return Batch(torch.from_numpy(np.asarray(users)), items, lengths, targets)

    def history_batch(self, users: np.ndarray, split: str, extra: int = 0) -> Batch:
        """Inputs and targets of ``split``: 'train' (whole training sequence, no target), 'valid' or 'test'.

        ``extra`` positions are left free at the end (Bert4Rec appends a mask token).
        """
        items, lengths = self.pad(self.history_sets(users, split), extra)
        targets = torch.from_numpy(self.split_targets(users, split)) if split != "train" else None
        return Batch(torch.from_numpy(np.asarray(users)), items, lengths, targets)

    def split_targets(self, users: np.ndarray, split: str) -> np.ndarray:
        """int64 [B]: each user's held-out item of ``split`` ('valid' or 'test')."""
        return np.array([self.full[u][-_CUT[split]] for u in users], dtype=np.int64)

    def history_sets(self, users: np.ndarray, split: str) -> list[np.ndarray]:
        """Items each user had interacted with before the split's target."""
        return [self.full[u][: -_CUT[split]] for u in users]


def last_positions(items: torch.Tensor, lengths: torch.Tensor, left_pad: bool) -> torch.Tensor:
    """Index of each row's most recent item: [B]."""
    if left_pad:
        return torch.full_like(lengths, items.shape[1] - 1)
    return (lengths - 1).clamp_min(0)
