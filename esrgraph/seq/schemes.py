"""Training schemes: which positions of a training batch predict which items.

A backbone declares the scheme it needs (:mod:`.backbones`):

* :class:`NextItems`: every position predicts the next item. Causal encoders
  (SASRec, GRU4Rec): an output reads only the items up to its position.
* :class:`MaskedItems`: a share of the items is hidden behind a mask token and
  recovered (Bert4Rec). Bidirectional encoders; a mask token is appended to a
  history at inference.
* :class:`Prefixes`: each prefix of a training sequence is its own row and its
  last position predicts the next item. Encoders that read the whole window at
  once (frequency filters), which would see the future if every position were
  trained in one pass.

Every scheme gives each user the same targets a next-item model has (its last
``max_length`` training items after the first), except the masked one.
:class:`TrainingBatch` is what the trainer hands the model: the inputs, the
candidates the objective drew, and the number the summed loss is divided by.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np
import torch

from ..data.sequences import Batch, SequenceData, last_positions
from .objectives import Candidates


@dataclass
class TrainingBatch:
    """One optimiser step's batch. ``inputs.users`` [R] gives each row's user; ``owner`` [R] each row's
    index into ``users`` (the batch's users, once each; None: row r is user r)."""

    inputs: Batch
    candidates: Candidates
    norm: float  # the whole batch's expected number of targets (its summed loss is divided by it)
    users: np.ndarray
    owner: torch.Tensor | None = None
    size: int = 0  # the whole batch's number of users (a process's share keeps it)

    def __post_init__(self) -> None:
        self.size = self.size or len(self.users)

    def share(self, part: slice) -> TrainingBatch:
        """The rows of the users ``part`` selects (one process's share of a global batch)."""
        if self.owner is None:
            rows = part
        else:
            rows = (self.owner >= part.start) & (self.owner < part.stop)
        inputs = replace(self.inputs, history=None).rows(rows)
        if self.inputs.history is not None:  # one row per user
            inputs.history = self.inputs.history.rows(part)
        owner = self.owner[rows] - part.start if self.owner is not None else None
        return TrainingBatch(inputs, self.candidates.at(rows), self.norm, self.users[part], owner, self.size)

    def parts(self, positions: int) -> list[TrainingBatch]:
        """The batch in parts of whole users, each holding at most ``positions`` input positions (rows ×
        slots; one user at least). Every part keeps the whole batch's ``norm``, so the parts' losses add
        up to the batch's: trained one after the other, a step's memory is bounded by a part."""
        width = self.inputs.items.shape[1]
        if len(self.inputs.items) * width <= positions:
            return [self]
        rows = np.ones(len(self.users), dtype=np.int64)
        if self.owner is not None:
            rows = np.bincount(self.owner.numpy(), minlength=len(self.users))
        per_part = max(1, positions // width)
        bounds, start, held = [], 0, 0
        for user, count in enumerate(rows):
            if user > start and held + count > per_part:
                bounds.append(slice(start, user))
                start, held = user, 0
            held += count
        bounds.append(slice(start, len(rows)))
        return [self.share(part) for part in bounds]

    def to(self, device: torch.device) -> TrainingBatch:
        owner = self.owner.to(device) if self.owner is not None else None
        return TrainingBatch(
            self.inputs.to(device), self.candidates.to(device), self.norm, self.users, owner, self.size
        )


class TrainingScheme:
    mask_token = False  # the model owns a mask token (inputs hide items behind it)
    appended_tokens = 0  # positions a history gets at inference after its last item
    reads_positions = True  # training positions can be read one by one (readouts fitted after training)

    def inputs(self, data: SequenceData, users: np.ndarray, generator: torch.Generator) -> tuple[Batch, torch.Tensor]:
        """The batch's inputs and targets, and each row's index into ``users`` (None: one row per user)."""
        raise NotImplementedError

    def targets_per_user(self, lengths: np.ndarray, max_length: int) -> np.ndarray:
        """Expected training targets of users whose training sequences have ``lengths``."""
        return np.clip(np.minimum(lengths - 1, max_length), 0, None).astype(float)

    def reading_batch(self, data: SequenceData, users: np.ndarray) -> Batch:
        """Rows whose targeted positions read only the items before the target (fitting readouts)."""
        raise NotImplementedError


class NextItems(TrainingScheme):
    def inputs(self, data, users, generator):
        return data.training_batch(users), None

    def reading_batch(self, data, users):
        return data.training_batch(users)


class MaskedItems(TrainingScheme):
    """``mask_prob`` of the real items masked (at least one per user, the last if none was drawn)."""

    mask_token = True
    appended_tokens = 1
    reads_positions = False

    def __init__(self, mask_prob: float, mask_id: int):
        self.mask_prob = mask_prob
        self.mask_id = mask_id

    def inputs(self, data, users, generator):
        history = data.history_batch(users, "train", self.appended_tokens)
        batch = data.history_batch(users, "train")
        real = batch.items > 0
        masked = (torch.rand(batch.items.shape, generator=generator) < self.mask_prob) & real
        none = ~masked.any(1)
        last = last_positions(batch.items, batch.lengths, data.left_pad)
        masked[none, last[none]] = True
        targets = torch.where(masked, batch.items, torch.zeros_like(batch.items))
        items = torch.where(masked, torch.full_like(batch.items, self.mask_id), batch.items)
        return Batch(batch.users, items, batch.lengths, targets, history), None

    def targets_per_user(self, lengths, max_length):
        kept = np.minimum(lengths, max_length).astype(float)
        return self.mask_prob * kept + (1.0 - self.mask_prob) ** kept


class Prefixes(TrainingScheme):
    """Each of a user's last ``max_length`` targets is a row: the items before it (up to ``max_length``) as input."""

    def inputs(self, data, users, generator):
        rows, owner = self.reading_batch(data, users), self._owner(data, users)
        rows.history = data.history_batch(users, "train")
        return rows, owner

    def reading_batch(self, data, users):
        prefixes, targets, row_users = [], [], []
        for user in users:
            seq = data.train_sequence(user)
            for cut in range(max(1, len(seq) - data.max_length), len(seq)):
                prefixes.append(seq[:cut])
                targets.append(seq[cut])
                row_users.append(user)
        items, lengths = data.pad(prefixes)
        target_grid = torch.zeros_like(items)
        last = last_positions(items, lengths, data.left_pad)
        target_grid[torch.arange(len(prefixes)), last] = torch.tensor(targets, dtype=torch.long)
        return Batch(torch.tensor(row_users, dtype=torch.long), items, lengths, target_grid)

    @staticmethod
    def _owner(data: SequenceData, users: np.ndarray) -> torch.Tensor:
        counts = [min(max(len(data.train_sequence(u)) - 1, 0), data.max_length) for u in users]
        return torch.repeat_interleave(torch.arange(len(users)), torch.tensor(counts, dtype=torch.long))
