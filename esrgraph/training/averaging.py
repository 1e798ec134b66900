"""An exponential moving average of a model's weights, validated beside the weights themselves.

Next-item models trained with a full softmax peak early and then overfit: the
validation curve is a sharp peak between noisy steps. The average of the
recent steps' weights sits in a flatter, better place than any one step
(Polyak averaging). :meth:`WeightAverage.applied` puts it into the model
while it is validated and, when it wins, saved; training itself goes on
from the raw weights.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import torch
from torch import nn


class WeightAverage:
    """``decay`` ∈ (0, 1): each step keeps that share of the average and adds the rest of the new weights."""

    def __init__(self, model: nn.Module, decay: float):
        if not 0.0 < decay < 1.0:
            raise ValueError(f"the weight average's decay must lie in (0, 1), got {decay}")
        self.decay = decay
        self.params = [p for p in model.parameters() if p.requires_grad]
        self.average = [p.detach().clone() for p in self.params]

    @torch.no_grad()
    def update(self) -> None:
        """Fold the model's current weights into the average (after each optimiser step)."""
        for a, p in zip(self.average, self.params):
            a.lerp_(p.detach(), 1.0 - self.decay)

    @contextmanager
    def applied(self) -> Iterator[None]:
        """The model holds the averaged weights inside the block and its own again after it."""
        with torch.no_grad():
            own = [p.detach().clone() for p in self.params]
            for p, a in zip(self.params, self.average):
                p.copy_(a)
        try:
            yield
        finally:
            with torch.no_grad():
                for p, o in zip(self.params, own):
                    p.copy_(o)

    def state_dict(self) -> dict[str, torch.Tensor]:
        return {str(i): a for i, a in enumerate(self.average)}

    def load_state_dict(self, state: dict[str, torch.Tensor]) -> None:
        if len(state) != len(self.average):
            raise ValueError(f"the saved weight average holds {len(state)} tensors, the model {len(self.average)}")
        with torch.no_grad():
            for i, a in enumerate(self.average):
                a.copy_(state[str(i)])
