"""Settings of the graph stage (`graph:` in YAML)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass
class GraphConfig:
    """Filled in by the graph stage."""
