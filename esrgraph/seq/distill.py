"""Retrieval-augmented self-distillation (LLM-ESR), an auxiliary loss term the model owns.

Each user's teacher is the average encoding of the training sequences of its K
most similar users (by LLM user-embedding cosine, from ``esr embed``). The
teacher is computed under ``torch.no_grad`` in eval mode: it is a target, so it
needs no autograd graph, and without dropout it is not noise.

With ``teacher: batch`` the neighbours are encoded for every batch (B × K
sequences); with ``teacher: epoch`` every user is encoded once at the start of
each epoch (U sequences) and teachers are averaged from that table, about K
times less encoding, with teachers up to one epoch old.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from ..data.sequences import SequenceData
from .config import DistillConfig


class SelfDistillation:
    """α · the distance of each user's vector (the student) to its teacher, per user of a batch.

    The loss is summed over the batch's users and divided by the whole batch's number of users;
    with user-group readouts trained jointly, head users are left out (the seed project's rule).
    """

    # Neighbour sequences are encoded in chunks of similar length, so one long
    # history does not pad hundreds of short ones.
    CHUNK = 256

    def __init__(self, similar: np.ndarray, cfg: DistillConfig, data: SequenceData, alpha: float):
        self.similar = similar[:, : cfg.k]
        self.cfg = cfg
        self.data = data
        self.alpha = alpha
        self.table: torch.Tensor | None = None  # [U, V * d] encodings of every user (teacher: epoch)

    @property
    def reads_model_each_epoch(self) -> bool:
        """Its teachers come from the model as it stood when the epoch began (not saved inside an epoch)."""
        return self.cfg.teacher == "epoch"

    def begin_epoch(self, model) -> None:
        if self.cfg.teacher == "epoch":
            self.table = self.encode(model, np.arange(self.data.num_users), model.input_device)

    def loss(self, model, batch, outputs: torch.Tensor) -> torch.Tensor:
        """α · the summed distance of the batch's users to their teachers, divided by ``batch.size``."""
        students = model.last_outputs(batch, outputs)
        teachers = self.teachers(model, batch.users, students.device)
        weights = None
        if model.readouts is not None:
            users = torch.from_numpy(batch.users).to(students.device)
            weights = (~model.readouts.skips_distillation(users)).float()
        return self.alpha * self.distance(students, teachers, float(batch.size), weights)

    @torch.no_grad()
    def teachers(self, model, users: np.ndarray, device: torch.device) -> torch.Tensor:
        """[B, V * d] mean encoding of each user's similar users' training sequences."""
        neighbours, inverse = np.unique(self.similar[users].reshape(-1), return_inverse=True)
        if self.table is not None:
            vectors = self.table[torch.from_numpy(neighbours).to(device)]
        else:
            vectors = self.encode(model, neighbours, device)
        picked = vectors[torch.from_numpy(inverse).to(device)]
        return picked.view(len(users), self.similar.shape[1], -1).mean(1)

    @torch.no_grad()
    def encode(self, model, users: np.ndarray, device: torch.device) -> torch.Tensor:
        """[len(users), V * d] shared user vectors of these users' training sequences, in eval mode."""
        order = np.argsort(self.data.train_lengths[users], kind="stable")
        was_training = model.training
        model.eval()
        try:
            parts = []
            for lo in range(0, len(order), self.CHUNK):
                chunk = users[order[lo : lo + self.CHUNK]]
                batch = self.data.history_batch(chunk, "train", model.appended_tokens).to(device)
                parts.append(model.user_vectors(batch.items, batch.lengths))
        finally:
            model.train(was_training)
        vectors = torch.empty((len(users), parts[0].shape[1]), device=device)
        vectors[torch.from_numpy(order).to(device)] = torch.cat(parts)
        return vectors

    def distance(
        self, students: torch.Tensor, teachers: torch.Tensor, norm: float, weights: torch.Tensor | None = None
    ) -> torch.Tensor:
        """Summed over users (``weights`` [B] in {0, 1} leave some out), divided by ``norm`` (the global batch size)."""
        if self.cfg.loss == "mse":
            per_user = F.mse_loss(students, teachers, reduction="none").mean(-1)
        else:
            logits = F.normalize(students, dim=-1) @ F.normalize(teachers, dim=-1).T / self.cfg.temperature
            labels = torch.arange(len(students), device=students.device)
            per_user = F.cross_entropy(logits, labels, reduction="none")
        if weights is not None:
            per_user = per_user * weights
        return per_user.sum() / norm
