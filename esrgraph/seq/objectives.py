"""Next-item training objectives: how position vectors are scored against items and turned into a loss.

Every objective maps position vectors ``hidden`` [P, D] and their ``targets`` [P]
to a loss summed over positions. They differ in which items a position is
scored against:

* ``bce``: binary cross-entropy, the target against ``negatives`` items drawn
  uniformly per position (the reference's objective with one negative);
* ``gbce``: generalised BCE ("gSASRec: Reducing Overconfidence in Sequential
  Recommendation Trained with Negative Sampling", RecSys 2023): the positive
  term raised to the power β = α(t(1 − 1/α) + 1/α), α = negatives / (N − 1),
  which calibrates a model trained on few negatives towards the full softmax;
* ``ce``: cross-entropy over every item (a full softmax, N-wide per position);
* ``sampled_softmax``: cross-entropy over the target and ``negatives`` items
  shared by the whole batch, drawn with probability q ∝ popularity^β; every
  logit is corrected by −log(n·q) ("On Using Very Large Target Vocabulary for
  Neural Machine Translation", ACL 2015; "Sampling-Bias-Corrected Neural
  Modeling for Large Corpus Item Recommendations", RecSys 2019), so its
  expected gradient follows the full softmax while a step costs O(P·n), not
  O(P·N): catalogues of millions of items train with it.

Item 0 is padding and never a candidate.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F

OBJECTIVES = ("bce", "gbce", "ce", "sampled_softmax")


@dataclass(frozen=True)
class Objective:
    """An objective by name, with its one setting (gBCE's calibration t)."""

    name: str
    gbce_t: float = 0.75

    def __post_init__(self) -> None:
        if self.name not in OBJECTIVES:
            raise ValueError(f"unknown objective {self.name!r}; choose one of {', '.join(OBJECTIVES)}")


@dataclass
class Candidates:
    """What a batch's positions are scored against.

    ``per_position`` [..., n]: item ids per position (bce, gbce); ``shared`` [n]:
    item ids shared by every position (sampled_softmax), and ``log_q`` [N + 1]
    every item's correction log(n·q(item)); neither: every item (ce).
    """

    per_position: torch.Tensor | None = None
    shared: torch.Tensor | None = None
    log_q: torch.Tensor | None = None

    def at(self, where: torch.Tensor) -> Candidates:
        """The candidates of the positions selected by the boolean mask ``where``."""
        if self.per_position is None:
            return self
        return Candidates(self.per_position[where], self.shared, self.log_q)

    def to(self, device: torch.device) -> Candidates:
        move = lambda t: t.to(device) if t is not None else None
        return Candidates(move(self.per_position), move(self.shared), move(self.log_q))

    def rows(self, index: slice) -> Candidates:
        """A process's share of a global batch's rows (per-position candidates only differ by row)."""
        if self.per_position is None:
            return self
        return Candidates(self.per_position[index], self.shared, self.log_q)


class NegativeSampler:
    """Draws the negatives an objective needs, from a generator of its own (so training resumes exactly).

    ``popularity`` [N + 1]: training interactions per item (row 0 padding),
    for the sampled softmax's proposal q ∝ (popularity + 1)^β.
    """

    def __init__(
        self,
        objective: Objective,
        negatives: int,
        num_items: int,
        popularity: torch.Tensor | None = None,
        beta: float = 1.0,
    ):
        self.objective = objective.name
        self.negatives = negatives
        self.num_items = num_items
        self.proposal = None
        if self.objective == "sampled_softmax":
            counts = popularity[1:].double() if popularity is not None else torch.zeros(num_items, dtype=torch.float64)
            weights = (counts + 1.0) ** beta  # +1: an item unseen in training can still be drawn
            self.proposal = (weights / weights.sum()).float()
            self.log_q_table = torch.cat([torch.zeros(1), torch.log(negatives * self.proposal)])

    def draw(self, targets: torch.Tensor, generator: torch.Generator) -> Candidates:
        """Candidates for the positions whose next items are ``targets`` [P]."""
        if self.objective == "ce":
            return Candidates()
        if self.objective == "sampled_softmax":
            drawn = torch.multinomial(self.proposal, self.negatives, replacement=True, generator=generator)
            return Candidates(shared=drawn + 1, log_q=self.log_q_table)
        return Candidates(per_position=uniform_negatives(targets, self.num_items, self.negatives, generator))


def uniform_negatives(targets: torch.Tensor, num_items: int, count: int, generator: torch.Generator) -> torch.Tensor:
    """[*targets.shape, count] uniform negatives from items 1..num_items, redrawn once where they hit the positive."""
    shape = (*targets.shape, count)
    negatives = torch.randint(1, num_items + 1, shape, generator=generator)
    redraw = torch.randint(1, num_items + 1, shape, generator=generator)
    return torch.where(negatives == targets.unsqueeze(-1), redraw, negatives)


def objective_loss(
    objective: Objective,
    hidden: torch.Tensor,
    targets: torch.Tensor,
    candidates: Candidates,
    item_vectors: Callable[[torch.Tensor], torch.Tensor],
    item_table: Callable[[], torch.Tensor],
    num_items: int,
) -> torch.Tensor:
    """Summed loss of position vectors ``hidden`` [P, D] for ``targets`` [P].

    ``item_vectors(ids)`` gives items' vectors; ``item_table()`` every item's [N + 1, D] (row 0 padding).
    """
    if objective.name == "ce":
        logits = hidden @ item_table().T
        logits[:, 0] = -float("inf")
        return F.cross_entropy(logits, targets, reduction="sum")
    positive = (hidden * item_vectors(targets)).sum(-1)
    if objective.name == "sampled_softmax":
        shared, log_q = candidates.shared, candidates.log_q
        negative = hidden @ item_vectors(shared).T - log_q[shared]
        # a drawn item that is the position's own target is not a negative ("accidental hit")
        negative = negative.masked_fill(shared.unsqueeze(0) == targets.unsqueeze(1), -float("inf"))
        logits = torch.cat([(positive - log_q[targets]).unsqueeze(1), negative], dim=1)
        return -F.log_softmax(logits, dim=1)[:, 0].sum()
    negative = (hidden.unsqueeze(1) * item_vectors(candidates.per_position)).sum(-1)
    if objective.name == "gbce":
        beta = gbce_beta(candidates.per_position.shape[-1], num_items, objective.gbce_t)
        return (beta * F.softplus(-positive) + F.softplus(negative).sum(-1)).sum()
    return (F.softplus(-positive) + F.softplus(negative).mean(-1)).sum()


def gbce_beta(negatives: int, num_items: int, t: float) -> float:
    """gBCE's power of the positive term: β = α(t(1 − 1/α) + 1/α), α = negatives / (N − 1)."""
    alpha = negatives / max(num_items - 1, 1)
    return alpha * (t * (1 - 1 / alpha) + 1 / alpha)
