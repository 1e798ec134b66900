"""The early-stopping rule every training loop uses.

A training stops once its monitored value has not improved (by more than
``min_delta``) for ``patience`` epochs, never before ``min_epochs``.

``floor`` guards a recommender against an early popularity peak: ranking by
popularity is learned within an epoch or two, and validation often dips after
it before personalisation lifts it higher. Patience therefore starts counting
only once a score has beaten the floor (the popularity baseline's validation
score) by ``floor_margin`` (relative). A model that never gets there trains
until its epoch budget, and says so.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

STATE = ("epoch", "best", "best_epoch", "bad_epochs", "armed", "stopped")


@dataclass
class EarlyStopping:
    patience: int
    mode: Literal["max", "min"] = "max"
    min_delta: float = 0.0
    min_epochs: int = 0
    floor: float | None = None
    floor_margin: float = 0.0
    # progress
    epoch: int = 0
    best: float | None = None
    best_epoch: int = 0
    bad_epochs: int = 0
    armed: bool = True  # patience counts (the floor, if any, has been beaten)
    stopped: bool = False

    def __post_init__(self) -> None:
        if self.floor is not None and self.epoch == 0:
            self.armed = False

    @property
    def threshold(self) -> float | None:
        """The score patience waits for before it starts counting (None: no floor)."""
        return None if self.floor is None else self.floor * (1.0 + self.floor_margin)

    def update(self, value: float) -> bool:
        """Record one epoch's value; True when it is the best so far. A non-finite value never is."""
        self.epoch += 1
        improved = math.isfinite(value) and (self.best is None or self._better(value, self.best))
        if improved:
            self.best, self.best_epoch, self.bad_epochs = value, self.epoch, 0
        elif self.armed:
            self.bad_epochs += 1
        if (
            not self.armed
            and math.isfinite(value)
            and self.threshold is not None
            and self._beats(value, self.threshold)
        ):
            self.armed = True
        self.stopped = self.armed and self.bad_epochs >= self.patience and self.epoch >= self.min_epochs
        return improved

    def state_dict(self) -> dict:
        return {name: getattr(self, name) for name in STATE}

    def load_state_dict(self, state: dict) -> None:
        for name in STATE:
            setattr(self, name, state[name])

    def _better(self, value: float, best: float) -> bool:
        return value > best + self.min_delta if self.mode == "max" else value < best - self.min_delta

    def _beats(self, value: float, threshold: float) -> bool:
        return value > threshold if self.mode == "max" else value < threshold
