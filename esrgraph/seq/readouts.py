"""User-group readouts: a separate prediction readout for each group of users, mixed with the shared score.

Users are grouped by history length (``seq.readouts.groups``): short-history
("tail") and long-history ("head") users as the dataset's groups define them,
or one group of every user (the control that tells a readout's effect from
that of splitting users). Each group g has a readout, a linear map W_g of the
user vector scored against the same item embeddings as the shared score, so
memory does not grow with the catalogue. A user's final score is

    (1 - θ_g) · shared(u, i) + θ_g · readout_g(u, i)
        = ((1 - θ_g) · u + θ_g · W_g u) · e_i,

computed as one mixed user vector, then dot products. Readouts start as the
identity. Two modes (``seq.readouts.mode``):

* ``joint``: the seed project's design. The readouts train with the shared
  model (the shared score keeps its own loss, each readout adds a loss on its
  own group's users), head users skip self-distillation, θ is fixed.
* ``fitted``: the shared model trains exactly as it would without readouts
  (draw for draw); afterwards each readout is fitted on the frozen model's
  training positions of its group (:mod:`.fit_readouts`), and each group's θ
  is chosen on validation (:mod:`.theta`; θ = 0 switches a readout off).
"""

from __future__ import annotations

import torch
from torch import nn

from .config import ReadoutsConfig

HEAD, TAIL = 0, 1


class GroupReadouts(nn.Module):
    """Inputs: hidden states [B, ..., D] and users [B]; output: mixed states of the same shape.

    ``tail_users`` [U]: the dataset's tail users (used with ``groups: head_tail``).
    """

    def __init__(self, dim: int, cfg: ReadoutsConfig, tail_users: torch.Tensor):
        super().__init__()
        tail = tail_users.bool().clone()
        self.names = ("head", "tail") if cfg.groups == "head_tail" else ("all",)
        self.register_buffer(
            "group_of", tail.long() if cfg.groups == "head_tail" else torch.zeros_like(tail, dtype=torch.long)
        )
        self.register_buffer("tail_users", tail)
        self.fitted_mode = cfg.mode == "fitted"
        # fitted after training: built without drawing random numbers, so the shared
        # model's initialisation and training are those of a model without readouts
        make = (lambda: nn.utils.skip_init(nn.Linear, dim, dim)) if self.fitted_mode else (lambda: nn.Linear(dim, dim))
        self.proj = nn.ModuleList(make() for _ in self.names)
        for layer in self.proj:
            nn.init.eye_(layer.weight)
            nn.init.zeros_(layer.bias)
        thetas = {"head": cfg.theta_head, "tail": cfg.theta_tail, "all": cfg.theta_tail}
        self.register_buffer("theta", torch.tensor([thetas[n] for n in self.names], dtype=torch.float32))
        if self.fitted_mode:  # saved with the model: a loaded model knows whether its readouts were fitted
            self.register_buffer("fitted", torch.tensor(False))
            self.proj.requires_grad_(False)  # no gradient in training (multi-process training expects none)

    @property
    def active(self) -> bool:
        """Whether scores use the readouts: always in ``joint`` mode, once fitted in ``fitted`` mode."""
        return not self.fitted_mode or bool(self.fitted)

    @property
    def trains_jointly(self) -> bool:
        return not self.fitted_mode

    def skips_distillation(self, users: torch.Tensor) -> torch.Tensor:
        """[B] True for users who skip self-distillation: head users, in ``joint`` mode with head and tail groups."""
        if self.fitted_mode or len(self.names) == 1:
            return torch.zeros_like(users, dtype=torch.bool)
        return ~self.tail_users[users]

    def groups(self, users: torch.Tensor) -> torch.Tensor:
        return self.group_of[users]

    def project(
        self, hidden: torch.Tensor, users: torch.Tensor | None, groups: torch.Tensor | None = None
    ) -> torch.Tensor:
        """Each user's readout vector W_g h (same shape as ``hidden``); ``groups`` [B] instead of ``users``
        for users the dataset does not know (a new history: 1 tail, 0 head)."""
        if len(self.proj) == 1:
            return self.proj[0](hidden)
        group = (self.groups(users) if groups is None else groups).view(-1, *([1] * (hidden.dim() - 1)))
        # Both readouts see every row (then one is picked), so both always take part
        # in the graph: a batch with one group only must not leave a readout unused.
        return torch.where(group == TAIL, self.proj[TAIL](hidden), self.proj[HEAD](hidden))

    def forward(
        self,
        hidden: torch.Tensor,
        users: torch.Tensor | None,
        projected: torch.Tensor | None = None,
        groups: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """The mixed vector (1 - θ_g) h + θ_g W_g h that inference scores with
        (``projected``: W_g h when the caller has it already; ``groups`` as in :meth:`project`)."""
        if groups is None:
            groups = self.groups(users)
        elif len(self.proj) == 1:
            groups = torch.zeros_like(groups)
        theta = self.theta[groups].view(-1, *([1] * (hidden.dim() - 1)))
        projected = self.project(hidden, None, groups) if projected is None else projected
        return (1 - theta) * hidden + theta * projected
