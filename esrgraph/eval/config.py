"""Settings of evaluation (`eval:`)."""

from __future__ import annotations

from dataclasses import dataclass

from ..config_schema import field
from ..errors import ConfigError

PROTOCOLS = ("sampled", "full")


@dataclass
class EvalConfig:
    protocols: list[str] = field(factory=lambda: list(PROTOCOLS), choices=PROTOCOLS, help="protocols reported")
    sampled_negatives: int = field(100, min=1, help="sampled protocol: negatives per user, never interacted with")
    negative_seed: int = field(2024, min=0, help="fixes each user's sampled negatives, the same for every model")
    users: int | None = field(
        None,
        min=1,
        help="the test split ranks a fixed random sample of this many users where there are more, for data too "
        "large to rank every user; the report names the sample's size (null: every user, as published "
        "comparisons do)",
    )
    ks: list[int] = field(factory=lambda: [5, 10, 20], min=1, help="cut-offs K of HR@K and NDCG@K (must include 10)")

    def check(self, cfg) -> None:
        if 10 not in self.ks:
            raise ConfigError(
                f"eval.ks: {self.ks} must include 10: early stopping, θ tuning and the ablation read NDCG@10"
            )
