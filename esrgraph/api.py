"""The Python API: building recommenders and trainers exactly as ``esr train-seq`` does.

The command line, the benchmarks and the tests all build through these
functions, so what they measure is what the toolkit trains::

    from esrgraph.api import build_recommender, build_trainer
    from esrgraph.config import load_config
    from esrgraph.runs import Run

    cfg = load_config("configs/quick.yaml")
    run = Run(cfg)
    model = build_recommender(cfg, run, seed=1)
    result = build_trainer(cfg, run, model).fit(seed=1)
"""

from __future__ import annotations

import torch

from .config import Config
from .pipeline import ensure
from .runs import Run
from .seq.build import RecommenderInputs
from .seq.build import build_recommender as _build_recommender
from .seq.build import build_trainer as _build_trainer
from .seq.model import SeqRecommender
from .seq.trainer import Trainer
from .stages import seq as seq_stage
from .training.checkpoint import CheckpointStore
from .training.device import resolve_device


def recommender_inputs(run: Run) -> RecommenderInputs:
    """The arrays the configured recommender is built from, bringing the stages it reads up to date first."""
    folders = {name: ensure(run, name) for name in seq_stage.reads(run.cfg)}
    return RecommenderInputs.from_folders(run.cfg, folders)


def build_recommender(
    cfg: Config, run: Run | None = None, seed: int | None = None, inputs: RecommenderInputs | None = None
) -> SeqRecommender:
    """The configured recommender on ``cfg.train.device``, initialised from ``seed`` (the first of
    ``train.seeds`` by default)."""
    inputs = inputs or recommender_inputs(run or Run(cfg))
    seed = cfg.train.seeds[0] if seed is None else seed
    return _build_recommender(cfg, inputs, seed, resolve_device(cfg.train.device))


def build_trainer(
    cfg: Config,
    run: Run | None,
    model: SeqRecommender,
    store: CheckpointStore | None = None,
    inputs: RecommenderInputs | None = None,
) -> Trainer:
    """A trainer for ``model`` with the configured objective, distillation and early stopping; checkpoints
    go to ``store`` (by default a folder ``train.checkpoints`` in the run directory)."""
    run = run or Run(cfg)
    inputs = inputs or recommender_inputs(run)
    store = store or CheckpointStore(run.dir / "train.checkpoints", run.key("seq", seq_stage.section(cfg), {}))
    device = next(model.parameters()).device if isinstance(model, torch.nn.Module) else resolve_device(cfg.train.device)
    return _build_trainer(cfg, inputs, model, store, device)
