"""The pipeline's stages, declared as a graph.

Each stage module defines one :class:`Stage`: the stages it reads, the config
its output depends on, and a ``produce`` function of the upstream stages'
output folders and its own settings that writes the stage's artifacts into
a fresh folder. No stage module imports another: :mod:`esrgraph.pipeline`
resolves the graph, runs what is missing or stale and hands each stage the
folders it reads.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ..config import Config
    from ..runs import Run
    from ..training.distributed import DistContext
    from ..training.loop import EpochCallback


def _single_process() -> DistContext:
    from ..training.distributed import DistContext

    return DistContext()


@dataclass
class StageRun:
    """What ``produce`` is given: the run, the upstream stages' folders by name, and how to treat checkpoints."""

    run: Run
    inputs: dict[str, Path]
    key: str
    resume: bool | str = (
        "auto"  # True: continue checkpoints (other settings: an error); "auto": continue when they match
    )
    callbacks: tuple[EpochCallback, ...] = ()  # run after each training epoch of the stage (tests, progress)
    dist: DistContext = field(default_factory=lambda: _single_process())

    @property
    def cfg(self) -> Config:
        return self.run.cfg


@dataclass(frozen=True)
class Stage:
    name: str
    reads: Callable[[Config], tuple[str, ...]]
    section: Callable[[Config], Any]
    produce: Callable[[StageRun, Path], dict | None]
    input_files: bool = False  # keyed by the hashes of the dataset's input files (the first stage)
    per_variant: bool = False  # an ablation's variants each have their own folder of this stage
    distributed: bool = False  # every torchrun process takes part (the others leave it to rank 0)
    checkpoints: bool = False  # keeps checkpoints in <stage>.checkpoints/ while it runs
    device: Callable[[Config], str] | None = None  # a distributed stage's device setting
