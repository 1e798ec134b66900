"""Next-item training objectives: which items a position is scored against, and the loss of those scores.

Each objective registers itself (:data:`~.registry.OBJECTIVES`) and owns its
sampler: it draws the candidates a batch needs from a generator the trainer
hands in, so training resumes draw for draw. Every objective maps position
vectors ``hidden`` [P, D] and their ``targets`` [P] to a loss summed over
positions:

* ``bce``: binary cross-entropy, the target against ``train.negatives`` items
  drawn uniformly per position (the reference's objective with one);
* ``gbce``: generalised BCE ("gSASRec: Reducing Overconfidence in Sequential
  Recommendation Trained with Negative Sampling", RecSys 2023): the positive
  term raised to the power β = α(t(1 − 1/α) + 1/α), α = negatives / (N − 1),
  which calibrates a model trained on few negatives towards the full softmax;
* ``ce``: cross-entropy over every item (a full softmax, N-wide per position);
* ``sampled_softmax``: cross-entropy over the target and ``train.negatives``
  items shared by the whole batch, drawn with probability q ∝ popularity^β;
  every logit is corrected by −log(n·q) ("On Using Very Large Target
  Vocabulary for Neural Machine Translation", ACL 2015; "Sampling-Bias-Corrected
  Neural Modeling for Large Corpus Item Recommendations", RecSys 2019), so its
  expected gradient follows the full softmax while a step costs O(P·n), not
  O(P·N): catalogues of millions of items train with it.

Item 0 is padding and never a candidate.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from .registry import OBJECTIVES
from .size_rule import objective_name

ItemVectors = Callable[[torch.Tensor], torch.Tensor]  # item ids [...] -> vectors [..., D]
ItemTable = Callable[[], torch.Tensor]  # every trainable item's vector [N + 1, D] (row 0 padding)


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
        """The candidates of the positions (or batch rows) selected by the boolean mask or index ``where``."""
        if self.per_position is None:
            return self
        return Candidates(self.per_position[where], self.shared, self.log_q)

    def to(self, device: torch.device) -> Candidates:
        move = lambda t: t.to(device) if t is not None else None
        return Candidates(move(self.per_position), move(self.shared), move(self.log_q))


class Objective:
    """A training objective: :meth:`draw` the candidates of a batch's targets, :meth:`loss` of their scores.

    ``negatives``: per position (bce, gbce) or per batch (sampled_softmax);
    ``num_items``: items that can be candidates (1..num_items);
    ``popularity`` [N + 1]: training interactions per item (the sampled softmax's proposal).
    """

    settings: tuple[str, ...] = ()  # the train.* keys it reads, for the config reference
    default_negatives = 1  # train.negatives when it is not set
    scores_every_item = False  # every step reads every item's vectors (no sparse id-table updates)

    def __init__(self, num_items: int, negatives: int = 1, popularity: torch.Tensor | None = None, **settings):
        self.num_items = num_items
        self.negatives = negatives

    def draw(self, targets: torch.Tensor, generator: torch.Generator) -> Candidates:
        """Candidates for the positions whose next items are ``targets`` (any shape)."""
        return Candidates()

    def loss(
        self,
        hidden: torch.Tensor,
        targets: torch.Tensor,
        candidates: Candidates,
        vectors: ItemVectors,
        table: ItemTable,
    ) -> torch.Tensor:
        """Summed loss of position vectors ``hidden`` [P, D] for ``targets`` [P]; ``vectors(ids)`` gives
        items' vectors, ``table()`` every candidate item's [N + 1, D] (row 0 padding)."""
        raise NotImplementedError


class FullSoftmax(Objective):
    """Cross-entropy over every item."""

    scores_every_item = True

    def loss(self, hidden, targets, candidates, vectors, table):
        logits = hidden @ table().T
        logits[:, 0] = -float("inf")
        return F.cross_entropy(logits, targets, reduction="sum")


class SampledSoftmax(Objective):
    """Cross-entropy over the target and negatives shared by the batch, drawn ∝ (popularity + 1)^β, log-q corrected."""

    settings = ("negatives", "sampled_softmax_beta")
    default_negatives = 2048

    def __init__(self, num_items, negatives=1, popularity=None, sampled_softmax_beta: float = 1.0, **settings):
        super().__init__(num_items, negatives)
        counts = popularity[1 : num_items + 1].double() if popularity is not None else torch.zeros(num_items).double()
        weights = (counts + 1.0) ** sampled_softmax_beta  # +1: an item unseen in training can still be drawn
        self.proposal = (weights / weights.sum()).float()
        self.log_q_table = torch.cat([torch.zeros(1), torch.log(negatives * self.proposal)])

    def draw(self, targets, generator):
        drawn = torch.multinomial(self.proposal, self.negatives, replacement=True, generator=generator)
        return Candidates(shared=drawn + 1, log_q=self.log_q_table)

    def loss(self, hidden, targets, candidates, vectors, table):
        positive = (hidden * vectors(targets)).sum(-1)
        shared, log_q = candidates.shared, candidates.log_q
        negative = hidden @ vectors(shared).T - log_q[shared]
        # a drawn item that is the position's own target is not a negative ("accidental hit")
        negative = negative.masked_fill(shared.unsqueeze(0) == targets.unsqueeze(1), -float("inf"))
        logits = torch.cat([(positive - log_q[targets]).unsqueeze(1), negative], dim=1)
        return -F.log_softmax(logits, dim=1)[:, 0].sum()


class BinaryCrossEntropy(Objective):
    """The target against uniform negatives per position, each scored on its own; negatives averaged."""

    settings = ("negatives",)

    def draw(self, targets, generator):
        return Candidates(per_position=uniform_negatives(targets, self.num_items, self.negatives, generator))

    def loss(self, hidden, targets, candidates, vectors, table):
        positive, negative = self._scores(hidden, targets, candidates, vectors)
        return (F.softplus(-positive) + F.softplus(negative).mean(-1)).sum()

    @staticmethod
    def _scores(hidden, targets, candidates, vectors) -> tuple[torch.Tensor, torch.Tensor]:
        positive = (hidden * vectors(targets)).sum(-1)
        negative = (hidden.unsqueeze(1) * vectors(candidates.per_position)).sum(-1)
        return positive, negative


class GeneralisedBCE(BinaryCrossEntropy):
    """gBCE: the positive term powered by β, the negatives summed."""

    settings = ("negatives", "gbce_t")
    default_negatives = 256

    def __init__(self, num_items, negatives=1, popularity=None, gbce_t: float = 0.75, **settings):
        super().__init__(num_items, negatives)
        self.gbce_t = gbce_t

    def loss(self, hidden, targets, candidates, vectors, table):
        positive, negative = self._scores(hidden, targets, candidates, vectors)
        beta = gbce_beta(candidates.per_position.shape[-1], self.num_items, self.gbce_t)
        return (beta * F.softplus(-positive) + F.softplus(negative).sum(-1)).sum()


def uniform_negatives(targets: torch.Tensor, num_items: int, count: int, generator: torch.Generator) -> torch.Tensor:
    """[*targets.shape, count] uniform negatives from items 1..num_items, redrawn once where they hit the positive."""
    shape = (*targets.shape, count)
    negatives = torch.randint(1, num_items + 1, shape, generator=generator)
    redraw = torch.randint(1, num_items + 1, shape, generator=generator)
    return torch.where(negatives == targets.unsqueeze(-1), redraw, negatives)


def gbce_beta(negatives: int, num_items: int, t: float) -> float:
    """gBCE's power of the positive term: β = α(t(1 − 1/α) + 1/α), α = negatives / (N − 1)."""
    alpha = negatives / max(num_items - 1, 1)
    return alpha * (t * (1 - 1 / alpha) + 1 / alpha)


def build_objective(train, num_items: int, popularity: torch.Tensor | None = None, text_view: bool = True) -> Objective:
    """The objective ``train.loss`` names (``auto``: by size and whether the model has a text view,
    :mod:`.size_rule`), with the train.* settings it declares."""
    cls = OBJECTIVES.get(objective_name(train.loss, num_items, text_view), "train.loss")
    settings = {name: getattr(train, name) for name in cls.settings}
    if "negatives" in settings and settings["negatives"] is None:
        settings["negatives"] = cls.default_negatives
    return cls(num_items, popularity=popularity, **settings)


OBJECTIVES.register("bce", BinaryCrossEntropy)
OBJECTIVES.register("gbce", GeneralisedBCE)
OBJECTIVES.register("ce", FullSoftmax)
OBJECTIVES.register("sampled_softmax", SampledSoftmax)
