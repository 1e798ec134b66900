"""Several optimisers stepped as one, for a training loop that takes one optimiser."""

from __future__ import annotations

from typing import Any

import torch


class Optimizers:
    """Named optimisers over disjoint parameters, used as one by :class:`~.loop.TrainingLoop`.

    ``zero_grad`` and ``step`` go to each; ``param_groups`` lists every
    group; the state dict holds one state dict per name, so checkpoints
    restore each optimiser exactly.
    """

    def __init__(self, **parts: torch.optim.Optimizer):
        self.parts = parts

    @property
    def param_groups(self) -> list[dict[str, Any]]:
        return [group for part in self.parts.values() for group in part.param_groups]

    def zero_grad(self, set_to_none: bool = True) -> None:
        for part in self.parts.values():
            part.zero_grad(set_to_none=set_to_none)

    def step(self) -> None:
        for part in self.parts.values():
            part.step()

    def state_dict(self) -> dict[str, dict]:
        return {name: part.state_dict() for name, part in self.parts.items()}

    def load_state_dict(self, state: dict[str, dict]) -> None:
        for name, part in self.parts.items():
            part.load_state_dict(state[name])
