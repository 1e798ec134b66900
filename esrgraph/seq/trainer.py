"""Training one recommender for one seed: batches, negatives, early stopping, checkpoints.

The trainer knows the model only through its contract (:mod:`.model`): the
model builds its own training batch and loss, so no backbone or variant is
special here. Every epoch ends with a checkpoint (model, optimizer, every
random state and the early-stopping state, :mod:`esrgraph.training.checkpoint`)
so that ``--resume`` after an interruption continues exactly as an
uninterrupted run would. The best model by validation NDCG@10 is kept
separately.

Early stopping (:class:`~esrgraph.training.stopping.EarlyStopping`) counts
patience only once validation has beaten the popularity baseline's
validation score by ``train.floor_margin``: a model that has learned no more
than popularity cannot stop there.

With ``train.weight_average`` an exponential moving average of the weights
(:mod:`esrgraph.training.averaging`) is validated beside them every epoch.
Each has its own early stopping (the average peaks later than the raw
weights, so a raw peak must not stop it) and is no longer validated once it
has run out of patience; training ends when both have, and the kept model
is the best of either. The average's state is checkpointed with the rest.
"""

from __future__ import annotations

import contextlib
import logging
import math
import time
from dataclasses import dataclass, field

import numpy as np
import torch
from tqdm.auto import tqdm

from ..data.sequences import SequenceData
from ..errors import EsrError
from ..eval.evaluate import Evaluator
from ..eval.metrics import VALID_METRIC
from ..training.averaging import WeightAverage
from ..training.checkpoint import CheckpointStore
from ..training.distributed import DistContext
from ..training.stopping import EarlyStopping
from .config import TrainConfig
from .distill import Distiller
from .model import SeqRecommender
from .objectives import NegativeSampler, Objective

log = logging.getLogger(__name__)


@dataclass
class TrainResult:
    """What a finished (or stopped) training leaves: one early-stopping state per set of weights
    validated (``raw``, and ``average`` with weight averaging) and one record per epoch."""

    stoppings: dict[str, EarlyStopping]
    history: list[dict] = field(default_factory=list)

    @property
    def leader(self) -> str:
        """The weights with the best validation score so far."""
        return max(self.stoppings, key=lambda name: _or_minus_inf(self.stoppings[name].best))

    @property
    def best_epoch(self) -> int:
        return self.stoppings[self.leader].best_epoch

    @property
    def best_score(self) -> float:
        best = self.stoppings[self.leader].best
        return best if best is not None else float("nan")

    @property
    def epochs(self) -> int:
        return max(stop.epoch for stop in self.stoppings.values())

    @property
    def stopped(self) -> bool:
        """Every set of weights has run out of patience on its own curve: the average rises later than
        the raw weights peak, so a raw peak cannot stop it."""
        return all(stop.stopped for stop in self.stoppings.values())

    @property
    def armed(self) -> bool:
        return any(stop.armed for stop in self.stoppings.values())


def _or_minus_inf(value: float | None) -> float:
    return value if value is not None else -math.inf


class Trainer:
    """Trains ``model`` on ``data``; ``floor`` is the popularity baseline's validation NDCG@10."""

    def __init__(
        self,
        model: SeqRecommender,
        data: SequenceData,
        train: TrainConfig,
        evaluator: Evaluator,
        distiller: Distiller | None,
        device: torch.device,
        store: CheckpointStore,
        dist: DistContext | None = None,
        floor: float | None = None,
        distill_alpha: float = 0.0,
    ):
        self.model = model
        self.data = data
        self.cfg = train
        self.evaluator = evaluator
        self.distiller = distiller
        self.distill_alpha = distill_alpha
        self.device = device
        self.dist = dist or DistContext()
        self.store = store
        self.floor = floor
        self.users = data.trainable_users()
        self.train_lengths = np.array([len(data.train_sequence(u)) for u in range(data.num_users)])
        if len(self.users) == 0:
            raise EsrError("no user has a training sequence of 2 or more items; nothing to train on")
        if len(self.users) < self.dist.world:  # every rank needs a user of each batch
            raise EsrError(
                f"{len(self.users)} users have a training sequence, fewer than the {self.dist.world} "
                "processes; launch at most that many"
            )
        self.targets_per_user = float(model.targets_per_user(self.train_lengths[self.users]).mean())
        self.network = self.dist.wrap(model, device)
        self.optimizer = torch.optim.Adam(model.parameters(), lr=train.lr, weight_decay=train.weight_decay)
        self.objective = Objective(train.loss, train.gbce_t)
        self.average = WeightAverage(model, train.weight_average) if train.weight_average > 0 else None
        self.sampler = NegativeSampler(
            self.objective,
            train.negatives,
            data.num_warm,
            data.train_popularity()[: data.num_warm + 1],
            train.sampled_softmax_beta,
        )

    def stopping_rules(self) -> dict[str, EarlyStopping]:
        """A fresh early stopping for each set of weights validated."""
        names = ["raw"] + (["average"] if self.average is not None else [])
        cfg = self.cfg
        return {
            name: EarlyStopping(
                cfg.patience, "max", min_epochs=cfg.min_epochs, floor=self.floor, floor_margin=cfg.floor_margin
            )
            for name in names
        }

    # ------------------------------------------------------------------ loop

    def fit(self, seed: int, resume: bool = False) -> TrainResult:
        """Train until early stopping or ``train.epochs``; with ``resume``, continue from the store's checkpoint."""
        rng, generator = np.random.default_rng(seed), torch.Generator().manual_seed(seed)
        generators = {"order": rng, "sampler": generator}
        result = TrainResult(self.stopping_rules())
        if resume and self.store.exists():
            result = self._restore(generators)
            log.info("resuming seed %d after epoch %d", seed, result.epochs)
        elif self.dist.is_main:
            self.store.start()
        while not result.stopped and result.epochs < self.cfg.epochs:
            start = time.perf_counter()
            loss = self.train_epoch(rng, generator, result.epochs + 1)
            trained = time.perf_counter() - start
            scores = self.validate_weights(result)
            self._record(result, loss, scores, trained, time.perf_counter() - start)
            self._save(result, generators)
        self._report_floor(result)
        return result

    def train_epoch(self, rng: np.random.Generator, generator: torch.Generator, epoch: int) -> float:
        """One pass over the training users; returns the mean batch loss."""
        if self.distiller is not None:
            self.distiller.start_epoch(self.model, self.device)
        self.network.train()
        order = self.user_order(rng)
        bounds = batch_bounds(len(order), self.cfg.batch_size, self.dist.world)
        if self.cfg.max_batches:
            bounds = bounds[: self.cfg.max_batches]
        total, seen = 0.0, 0
        bar = tqdm(
            bounds, desc=f"epoch {epoch}", unit="batch", leave=False, disable=None if self.dist.is_main else True
        )
        for lo, hi in bar:
            total += self.step(order[lo:hi], generator)
            seen += 1
            bar.set_postfix(loss=f"{total * self.dist.world / seen:.4f}")  # rank 0's share, scaled
        return self.dist.sum(total) / max(seen, 1)  # every rank steps the same batches

    def user_order(self, rng: np.random.Generator) -> np.ndarray:
        """This epoch's user order: random, or random batches of similar lengths (``length_buckets``)."""
        order = rng.permutation(self.users)
        buckets, size = self.cfg.length_buckets, self.cfg.batch_size
        if buckets <= 1:
            return order
        window = buckets * size
        for lo in range(0, len(order), window):
            part = order[lo : lo + window]
            order[lo : lo + window] = part[np.argsort(self.train_lengths[part], kind="stable")]
        batches = [order[lo : lo + size] for lo in range(0, len(order), size)]
        return np.concatenate([batches[i] for i in rng.permutation(len(batches))])

    def step(self, users: np.ndarray, generator: torch.Generator) -> float:
        """One optimiser step on ``users``; returns this rank's share of the batch loss (global counts)."""
        batch = self.model.training_batch(self.data, users, generator)
        candidates = self.sampler.draw(batch.targets, generator)
        # Every target weighs the same, whatever batch it falls in: the summed loss is divided by
        # the batch's expected number of targets, not its own. Length buckets make batches of short
        # histories only; dividing by their own few targets gave each of them several times the
        # weight of a long history's target (amazon-scientific validation 0.1047 against 0.1072).
        norm = len(users) * self.targets_per_user
        share = self.dist.share(len(users))
        local = batch.rows(share).to(self.device)
        loss, students = self.network(local, candidates.rows(share).to(self.device), norm, self.objective)
        if self.distiller is not None:
            teachers = self.distiller.teachers(self.model, users[share], self.device)
            weights = self.model.distill_weights(local.users)
            loss = loss + self.distill_alpha * self.distiller.loss(students, teachers, float(len(users)), weights)
        if not torch.isfinite(loss):
            raise EsrError(
                f"training diverged: the loss became {float(loss)}; lower train.lr "
                f"(now {self.cfg.lr:g}) or check the input embeddings"
            )
        self.optimizer.zero_grad(set_to_none=True)
        (loss * self.dist.world).backward()  # DDP averages over ranks; the losses use global counts
        self.optimizer.step()
        if self.average is not None:
            self.average.update()
        return float(loss.detach())

    # --------------------------------------------------------- validation

    def validate_weights(self, result: TrainResult) -> dict[str, float]:
        """Validation NDCG@10 of each set of weights still running: the raw weights and, with
        ``train.weight_average``, the average. One that has run out of patience is done."""
        scores = {}
        for name, stop in result.stoppings.items():
            if not stop.stopped:
                with self.weights_in_model(name):
                    scores[name] = self.validate()
        return scores

    def weights_in_model(self, name: str) -> contextlib.AbstractContextManager:
        """The model holds the ``name``d weights (``raw``: its own; ``average``) inside the block."""
        return self.average.applied() if name == "average" else contextlib.nullcontext()

    def validate(self) -> float:
        """Validation NDCG@10 under ``train.valid_protocol`` (rank 0 computes, every rank receives)."""
        score = 0.0
        if self.dist.is_main:
            metrics = self.evaluator.evaluate(self.model, "valid", [self.cfg.valid_protocol])
            score = metrics[self.cfg.valid_protocol]["overall"][VALID_METRIC]
        return self.dist.broadcast(score)

    def _record(
        self, result: TrainResult, loss: float, scores: dict[str, float], trained: float, seconds: float
    ) -> None:
        before = _or_minus_inf(result.stoppings[result.leader].best)
        for name, score in scores.items():
            result.stoppings[name].update(score)
        weights = max(scores, key=scores.get)
        entry = {
            "epoch": result.epochs,
            "loss": round(loss, 6),
            f"valid_{VALID_METRIC}": round(scores[weights], 6),
            "weights": weights,
        }
        if self.average is not None:  # each running set's own score, for their curves
            entry.update({f"valid_{name}": round(score, 6) for name, score in scores.items()})
        entry.update(train_seconds=round(trained, 3), seconds=round(seconds, 3))
        result.history.append(entry)
        if self.dist.is_main:
            log.info(
                "epoch %d: loss %.4f, valid %s %.4f (%s, %s weights), best %.4f at epoch %d, %.1f s",
                result.epochs,
                loss,
                VALID_METRIC,
                scores[weights],
                self.cfg.valid_protocol,
                weights,
                result.best_score,
                result.best_epoch,
                seconds,
            )
        # the kept model: the weights that beat every score so far (a NaN never does)
        if self.dist.is_main and _or_minus_inf(result.stoppings[result.leader].best) > before:
            with self.weights_in_model(result.leader):
                self.store.save_best(self.model.state_dict())

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

    # --------------------------------------------------------- checkpoints

    def _save(self, result: TrainResult, generators: dict) -> None:
        if not self.dist.is_main:
            return
        states = {"model": self.model.state_dict(), "optimizer": self.optimizer.state_dict()}
        if self.average is not None:
            states["average"] = self.average.state_dict()
        stoppings = {name: stop.state_dict() for name, stop in result.stoppings.items()}
        progress = {"stoppings": stoppings, "history": result.history}
        self.store.save(result.epochs, states, progress, generators)

    def _restore(self, generators: dict) -> TrainResult:
        states, progress = self.store.load(generators)
        self.model.load_state_dict(states["model"])
        self.optimizer.load_state_dict(states["optimizer"])
        if self.average is not None:
            self.average.load_state_dict(states["average"])
        stoppings = self.stopping_rules()
        for name, stop in stoppings.items():
            stop.load_state_dict(progress["stoppings"][name])
        return TrainResult(stoppings, progress["history"])


def batch_bounds(rows: int, size: int, world: int = 1) -> list[tuple[int, int]]:
    """(start, end) of each batch of ``size`` rows; with several processes, a last batch too small
    to give every rank a row joins the batch before it instead of being dropped."""
    bounds = [(lo, min(lo + size, rows)) for lo in range(0, rows, size)]
    if world > 1 and len(bounds) > 1 and bounds[-1][1] - bounds[-1][0] < world:
        bounds[-2:] = [(bounds[-2][0], rows)]
    return bounds
