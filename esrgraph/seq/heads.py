"""Separate prediction heads for head and tail users.

Each group g has a head: a linear projection W_g of the user vector, scored
against the same item embeddings as the shared score, so memory does not grow
with the catalogue beyond the item table. A user's final score is

    (1 - θ_g) · shared(u, i) + θ_g · head_g(u, i)
        = ((1 - θ_g) · u + θ_g · W_g u) · e_i,

which is how it is computed: one mixed user vector, then dot products. Heads
start as the identity.

Training does not optimise the mixed score. The shared score keeps its own
loss, and each group head gets a second loss on its own group's users only;
the weights mix them at inference. Optimising the mixed vector alone made
the shared score and the heads co-adapt: on amazon-scientific (3 seeds) it
lowered test NDCG@10 for both user groups, by 11-12% (sampled protocol) and
22-27% (full ranking).

With ``shared_gradient: false`` the group losses reach the heads alone: the
shared encoder and item table learn from the shared loss only, as in plain
LLM-ESR, and each head is a readout fitted over them.

With ``fit: after`` the heads take no part in training at all (the model
trains, draw for draw, as it would without them) and are fitted afterwards
on the frozen model's outputs (:mod:`.fit_heads`); until then they are
inactive and every score is the shared one.
"""

from __future__ import annotations

import torch
from torch import nn

from .config import HeadsConfig

HEAD, TAIL = 0, 1


class GroupHeads(nn.Module):
    """Inputs: hidden states [B, ..., D] and users [B]; output: mixed states of the same shape."""

    def __init__(self, dim: int, cfg: HeadsConfig, tail_users: torch.Tensor):
        super().__init__()
        self.register_buffer("tail_users", tail_users.bool().clone())
        self.fit_after = cfg.fit == "after"
        # fitted after training: built without drawing random numbers, so the shared
        # model's initialisation and training are those of a model without heads
        make = (lambda: nn.utils.skip_init(nn.Linear, dim, dim)) if self.fit_after else (lambda: nn.Linear(dim, dim))
        self.proj = nn.ModuleList(make() for _ in (HEAD, TAIL))
        for layer in self.proj:
            nn.init.eye_(layer.weight)
            nn.init.zeros_(layer.bias)
        self.shared_gradient = cfg.shared_gradient
        theta = torch.tensor([cfg.theta_head, cfg.theta_tail], dtype=torch.float32)
        if cfg.learn_theta:
            self.theta_logit = nn.Parameter(torch.logit(theta.clamp(1e-4, 1 - 1e-4)))
        else:
            self.register_buffer("theta_fixed", theta)
        if self.fit_after:  # saved with the model: a loaded model knows whether its heads were fitted
            self.register_buffer("fitted", torch.tensor(False))
            self.proj.requires_grad_(False)  # no gradient in training (multi-process training expects none)

    @property
    def active(self) -> bool:
        """Whether scores use the heads: always when trained jointly, once fitted when fitted after training."""
        return not self.fit_after or bool(self.fitted)

    @property
    def learns_theta(self) -> bool:
        return hasattr(self, "theta_logit")

    @property
    def theta(self) -> torch.Tensor:
        """[2]: the weight of the group head for head (0) and tail (1) users."""
        return torch.sigmoid(self.theta_logit) if hasattr(self, "theta_logit") else self.theta_fixed

    def groups(self, users: torch.Tensor) -> torch.Tensor:
        return self.tail_users[users].long()

    def _group(self, hidden: torch.Tensor, users: torch.Tensor) -> torch.Tensor:
        return self.groups(users).view(-1, *([1] * (hidden.dim() - 1)))

    def project(self, hidden: torch.Tensor, users: torch.Tensor) -> torch.Tensor:
        """Each user's group-head vector W_g h (same shape as ``hidden``)."""
        group = self._group(hidden, users)
        # Both heads see every row (then one is picked), so both always take part
        # in the graph: a batch with one group only must not leave a head unused.
        return torch.where(group == TAIL, self.proj[TAIL](hidden), self.proj[HEAD](hidden))

    def forward(self, hidden: torch.Tensor, users: torch.Tensor, projected: torch.Tensor | None = None) -> torch.Tensor:
        """The mixed vector (1 - θ_g) h + θ_g W_g h that inference scores with
        (``projected``: W_g h when the caller has it already)."""
        theta = self.theta[self._group(hidden, users)]
        projected = self.project(hidden, users) if projected is None else projected
        return (1 - theta) * hidden + theta * projected
