"""An exponential moving average of a model's weights, validated beside the weights themselves.

Next-item models trained with a full softmax peak early and then overfit: the
validation curve is a sharp peak between noisy steps. The average of the
recent steps' weights sits in a flatter, better place than any one step
(Polyak averaging). :meth:`WeightAverage.applied` puts it into the model
while it is validated and, when it wins, saved; training itself goes on
from the raw weights.

A table trained with sparse gradients (``train.sparse_ids``) changes only the
rows a step read, so its average is kept lazily: a row sitting still for k
steps moves k steps towards its constant weights in one go,
a ← w + decay^k (a − w), when a step next changes it or when the average is
read. The result is the eager average's (to rounding) at a cost that follows
the rows read, not the catalogue.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import torch
from torch import nn

# Rows of a lazy table caught up at once: reading the whole average of a 921,393-row table at once made
# five temporary copies of it (about 1 GB each at 256 wide)
CATCH_UP_ROWS = 65_536


def decay_within(decay: float, steps_per_epoch: int, max_epochs: float) -> float:
    """``decay``, or less where its horizon of 1 / (1 − decay) steps would span more than ``max_epochs``
    epochs (0: no limit). An average that starts from the initial weights keeps a share decay^t of them
    after t steps: at 1,000 steps of horizon and 8 steps an epoch, two thirds still after 50 epochs."""
    if max_epochs <= 0:
        return decay
    return min(decay, 1.0 - 1.0 / (max_epochs * max(steps_per_epoch, 1)))


class WeightAverage:
    """``decay`` ∈ (0, 1): each step keeps that share of the average and adds the rest of the new weights."""

    def __init__(self, model: nn.Module, decay: float):
        if not 0.0 < decay < 1.0:
            raise ValueError(f"the weight average's decay must lie in (0, 1), got {decay}")
        self.decay = decay
        self.params = [p for p in model.parameters() if p.requires_grad]
        self.average = [p.detach().clone() for p in self.params]
        self.steps = 0
        self.folded: dict[int, torch.Tensor] = {}  # lazy tables: the step each row's average is current to
        self._changing: dict[int, torch.Tensor] = {}  # lazy tables: the rows this step changes

    @torch.no_grad()
    def before_step(self) -> None:
        """Between backward and the optimiser step: the rows a sparse gradient is about to change catch up
        on the steps they sat still (their weights are still the ones they held all along)."""
        self._changing = {}
        for i, p in enumerate(self.params):
            if p.grad is None or not p.grad.is_sparse:
                continue
            if i not in self.folded:  # first sparse step: every row is current
                self.folded[i] = torch.full((p.shape[0],), self.steps, dtype=torch.long, device=p.device)
            p.grad = p.grad.coalesce()  # once: the row-wise optimiser needs it coalesced too, and skips it now
            rows = p.grad.indices()[0]  # unique once coalesced
            self._catch_up(i, rows)
            self._changing[i] = rows

    @torch.no_grad()
    def update(self) -> None:
        """Fold the model's current weights into the average (after each optimiser step)."""
        self.steps += 1
        for i, (a, p) in enumerate(zip(self.average, self.params)):
            if i not in self.folded:
                a.lerp_(p.detach(), 1.0 - self.decay)
            elif i in self._changing:  # a lazy table: only the rows this step changed
                rows = self._changing[i]
                a[rows] = a[rows].lerp(p.detach()[rows], 1.0 - self.decay)
                self.folded[i][rows] = self.steps
        self._changing = {}

    def _catch_up(self, i: int, rows: torch.Tensor | None = None) -> None:
        """Lazy table ``i``'s ``rows`` (None: all) take the steps they missed: a ← w + decay^k (a − w)."""
        a, w, folded = self.average[i], self.params[i].detach(), self.folded[i]
        rows = torch.arange(len(folded), device=folded.device) if rows is None else rows
        rows = rows[folded[rows] < self.steps]  # rows already current stay bit for bit as they are
        decay = torch.tensor(self.decay, dtype=torch.float64)
        for lo in range(0, len(rows), CATCH_UP_ROWS):  # a few rows' temporaries at once, not the table's
            part = rows[lo : lo + CATCH_UP_ROWS]
            factor = torch.pow(decay, (self.steps - folded[part]).double()).to(a.dtype).unsqueeze(1)
            a[part] = w[part] + factor * (a[part] - w[part])
        folded[rows] = self.steps

    @torch.no_grad()
    def _current(self) -> None:
        """Every lazy table's average brought up to this step, before anyone reads it."""
        for i in self.folded:
            self._catch_up(i)

    @contextmanager
    def applied(self) -> Iterator[None]:
        """The model holds the averaged weights inside the block and its own again after it. The two sets
        swap storages rather than being copied: at a million items a copy of the id table is a GB."""
        self._current()
        self._swap()
        try:
            yield
        finally:
            self._swap()

    def _swap(self) -> None:
        for p, a in zip(self.params, self.average):
            own = p.data
            p.data = a.data
            a.data = own

    def state_dict(self) -> dict[str, torch.Tensor]:
        self._current()
        return {str(i): a for i, a in enumerate(self.average)}

    def exact_state(self) -> dict[str, torch.Tensor]:
        """The average as it stands, lazy rows not caught up, with the step each row is current to:
        what a run continuing from the middle of an epoch needs to compute bit for bit the same."""
        state = {str(i): a for i, a in enumerate(self.average)}
        state |= {f"folded:{i}": folded for i, folded in self.folded.items()}
        return state | {"steps": torch.tensor(self.steps)}

    def load_exact_state(self, state: dict[str, torch.Tensor]) -> None:
        self.load_state_dict({key: value for key, value in state.items() if key.isdigit()})
        self.steps = int(state["steps"])
        self.folded = {
            int(key.split(":")[1]): value.clone() for key, value in state.items() if key.startswith("folded:")
        }

    def load_state_dict(self, state: dict[str, torch.Tensor]) -> None:
        if len(state) != len(self.average):
            raise ValueError(f"the saved weight average holds {len(state)} tensors, the model {len(self.average)}")
        with torch.no_grad():
            for i, a in enumerate(self.average):
                a.copy_(state[str(i)])
        self.folded = {}  # a saved average is current in every row
