"""Settings of the graph pretraining stage (`gnn:` in YAML)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass
class GnnConfig:
    """Filled in by the pretraining stage."""
