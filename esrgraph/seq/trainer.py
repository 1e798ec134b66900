"""Training one recommender for one seed: its epochs on the training core (:mod:`esrgraph.training.loop`).

The trainer knows the model only through its contract (:mod:`.model`): the
model builds its own training batch (its training scheme and its objective's
candidates) and returns one scalar loss with every term in it, so no
backbone, variant or objective is special here. What this module adds to the
core: the epoch's user order, validation NDCG@10 under ``train.valid_protocol``
(overall, and per user and item group for the curves), and the popularity
floor of early stopping.

Early stopping (:class:`~esrgraph.training.stopping.EarlyStopping`) counts
patience only once validation has beaten the popularity baseline's
validation score by ``train.floor_margin``: a model that has learned no more
than popularity cannot stop there. With ``train.weight_average`` an
exponential moving average of the weights is validated beside them, each
with its own early stopping, and the kept model is the best of either.
"""

from __future__ import annotations

import logging

import numpy as np
import torch

from ..data.sequences import SequenceData
from ..errors import EsrError
from ..eval.evaluate import Evaluator
from ..eval.metrics import GROUPS, VALID_METRIC
from ..training.averaging import WeightAverage, decay_within
from ..training.checkpoint import CheckpointStore
from ..training.distributed import DistContext
from ..training.loop import EpochCallback, TrainingLoop, TrainResult
from ..training.stopping import EarlyStopping
from .config import TrainConfig
from .model import SeqRecommender
from .optimiser import recommender_optimiser
from .schemes import TrainingBatch

log = logging.getLogger(__name__)


class RecommenderTask:
    """The recommender's epochs as the training core sees them: batches of users, the model's loss, validation."""

    metric = VALID_METRIC

    def __init__(self, trainer: Trainer, rng: np.random.Generator, generator: torch.Generator):
        self.trainer = trainer
        self.model = trainer.model
        self.rng = rng
        self.generator = generator

    @property
    def checkpoints_within_epochs(self) -> bool:
        """Whether a checkpoint inside an epoch can be continued from exactly: not where a term of the
        loss keeps what the model computed when the epoch began."""
        terms = self.model.parts.auxiliary
        return not any(getattr(term, "reads_model_each_epoch", False) for term in terms)

    def begin_epoch(self, epoch: int) -> None:
        self.model.begin_epoch()

    def batches(self, epoch: int) -> list[np.ndarray]:
        order = self.trainer.user_order(self.rng)
        return [order[lo:hi] for lo, hi in self.trainer.epoch_bounds()]

    def parts(self, users: np.ndarray) -> list[TrainingBatch]:
        """This process's share of the batch of ``users``, in parts of at most ``train.step_positions``
        input positions (a prefix scheme makes a row of every target)."""
        batch = self.model.training_batch(users, self.generator)
        share = batch.share(self.trainer.dist.share(len(users)))
        return share.parts(self.trainer.cfg.step_positions)

    def loss(self, part: TrainingBatch, network: torch.nn.Module) -> torch.Tensor:
        """A part's loss, normalised by the whole batch's targets (the parts' losses add up to the batch's)."""
        device = self.trainer.device
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=self.trainer.precision == "bf16"):
            return network(part.to(device))

    def validate(self) -> dict[str, float]:
        return self.trainer.validate()


class Trainer:
    """Trains ``model`` (its training prepared) on ``data``; ``train`` with its size-dependent ``auto``
    settings resolved (:func:`.size_rule.resolve`); ``floor``: popularity's validation NDCG@10."""

    def __init__(
        self,
        model: SeqRecommender,
        data: SequenceData,
        train: TrainConfig,
        evaluator: Evaluator,
        device: torch.device,
        store: CheckpointStore | None,
        dist: DistContext | None = None,
        floor: float | None = None,
    ):
        self.model = model
        self.data = data
        self.cfg = train
        self.evaluator = evaluator
        self.device = device
        self.dist = dist or DistContext()
        self.store = store
        self.floor = floor
        self.users = data.trainable_users()
        if len(self.users) == 0:
            raise EsrError("no user has a training sequence of 2 or more items; nothing to train on")
        if len(self.users) < self.dist.world:  # every rank needs a user of each batch
            raise EsrError(
                f"{len(self.users)} users have a training sequence, fewer than the {self.dist.world} "
                "processes; launch at most that many"
            )
        self.optimizer = recommender_optimiser(model, train)
        self.average = self._weight_average(model) if train.weight_average > 0 else None
        self.precision = train.precision
        if self.dist.is_main:
            log.info("train-seq: %s", self.describe_settings())
        self.loop: TrainingLoop | None = None

    def epoch_bounds(self) -> list[tuple[int, int]]:
        """(start, end) in the epoch's user order of each batch an epoch trains."""
        bounds = batch_bounds(len(self.users), self.cfg.batch_size, self.dist.world)
        return bounds[: self.cfg.max_batches] if self.cfg.max_batches else bounds

    def _weight_average(self, model) -> WeightAverage:
        """The average of ``train.weight_average``, its horizon held to ``train.weight_average_epochs``."""
        cfg, steps = self.cfg, len(self.epoch_bounds())
        decay = decay_within(cfg.weight_average, steps, cfg.weight_average_epochs)
        if decay != cfg.weight_average and self.dist.is_main:
            log.info(
                "train-seq: weight average decay %.5f: %d steps an epoch, its horizon held to %g epochs",
                decay,
                steps,
                cfg.weight_average_epochs,
            )
        return WeightAverage(model, decay)

    def describe_settings(self) -> str:
        """What the size-dependent settings (:mod:`.size_rule`) came to, for the log."""
        validated = self.evaluator.valid_users
        users = self.data.num_users if validated is None else len(validated)
        return (
            f"{self.data.num_warm:,} trainable items: {self.cfg.loss} objective, {self.precision} matrix "
            f"products on {self.device}, validation on {users:,} of {self.data.num_users:,} users, "
            f"patience {self.cfg.patience}, {self.cfg.batch_size} users a batch"
        )

    def stopping_rule(self) -> EarlyStopping:
        cfg = self.cfg
        return EarlyStopping(
            cfg.patience, "max", min_epochs=cfg.min_epochs, floor=self.floor, floor_margin=cfg.floor_margin
        )

    def fit(self, seed: int, resume: bool | str = False, callbacks: tuple[EpochCallback, ...] = ()) -> TrainResult:
        """Train until early stopping or ``train.epochs``; ``resume`` continues the store's checkpoint
        (:func:`~esrgraph.training.loop.resumes`). Each callback runs after each epoch's checkpoint."""
        rng, generator = np.random.default_rng(seed), torch.Generator().manual_seed(seed)
        self.loop = TrainingLoop(
            RecommenderTask(self, rng, generator),
            self.optimizer,
            self.stopping_rule,
            self.cfg.epochs,
            self.store,
            self.average,
            {"order": rng, "sampler": generator},
            self.dist,
            label="train-seq",
            callbacks=callbacks,
            checkpoint_seconds=self.cfg.checkpoint_minutes * 60,
        )
        result = self.loop.fit(resume)
        self._report_floor(result)
        return result

    def finish(self, result: TrainResult) -> dict[str, torch.Tensor]:
        """End training and return its best weights. The optimiser's moments, the weight average and the
        last gradients go first (training cannot go on after): at a million items they held several GB
        while the best weights were read beside the model."""
        self.optimizer = self.average = self.loop.optimizer = self.loop.average = None
        self.model.zero_grad(set_to_none=True)
        return self.loop.best_state(result)

    def validate(self) -> dict[str, float]:
        """Validation NDCG@10 under ``train.valid_protocol``: overall first, then each user and item group.
        The user vectors are computed in the training precision: in bf16 a validation pass over 38,329
        users took 1.3x less time and ranked alike (``benchmarks/README.md``)."""
        protocol = self.cfg.valid_protocol
        bf16 = self.precision == "bf16"
        metrics = self.evaluator.evaluate(self.model, "valid", [protocol], encode_bf16=bf16)[protocol]
        return {VALID_METRIC: metrics["overall"][VALID_METRIC]} | {
            group: metrics[group][VALID_METRIC] for group in GROUPS[1:] if metrics[group][VALID_METRIC] is not None
        }

    def user_order(self, rng: np.random.Generator) -> np.ndarray:
        """This epoch's user order: random, or random batches of similar lengths (``length_buckets``)."""
        order = rng.permutation(self.users)
        buckets, size = self.cfg.length_buckets, self.cfg.batch_size
        if buckets <= 1:
            return order
        lengths = self.data.train_lengths
        window = buckets * size
        for lo in range(0, len(order), window):
            part = order[lo : lo + window]
            order[lo : lo + window] = part[np.argsort(lengths[part], kind="stable")]
        batches = [order[lo : lo + size] for lo in range(0, len(order), size)]
        return np.concatenate([batches[i] for i in rng.permutation(len(batches))])

    def _report_floor(self, result: TrainResult) -> None:
        if self.dist.is_main and not result.armed:
            log.warning(
                "validation %s never beat the popularity baseline's %.4f by %.0f%% in %d epochs: this model "
                "learned little beyond popularity",
                VALID_METRIC,
                self.floor or 0.0,
                100 * self.cfg.floor_margin,
                result.epochs,
            )


def batch_bounds(rows: int, size: int, world: int = 1) -> list[tuple[int, int]]:
    """(start, end) of each batch of ``size`` rows; with several processes, a last batch too small
    to give every rank a row joins the batch before it instead of being dropped."""
    bounds = [(lo, min(lo + size, rows)) for lo in range(0, rows, size)]
    if world > 1 and len(bounds) > 1 and bounds[-1][1] - bounds[-1][0] < world:
        bounds[-2:] = [(bounds[-2][0], rows)]
    return bounds
