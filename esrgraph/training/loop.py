"""The one training loop: epochs of optimiser steps, validation, early stopping, averaging and checkpoints.

Every model in the project trains through :class:`TrainingLoop`: the
sequential recommender, the graph pretraining and the readouts fitted after
training. What differs between them is an :class:`EpochTask`: the batches of
an epoch, the loss of a batch (one scalar: the model owns every term of it)
and, optionally, a validation score. The loop does the rest, the same way
for every task:

* the monitored value is the validation score (higher is better) or, for a
  task that does not validate, the epoch's mean training loss (lower is
  better); each set of weights validated (the raw weights, and with
  ``average`` their exponential moving average) has its own early stopping
  (:mod:`.stopping`) and the training ends when every one has stopped;
* the best weights by the monitored value are kept (``best.pt`` in the
  checkpoint store, or in memory without one);
* with a store, every epoch ends with a checkpoint (weights, optimiser, the
  average, every random state, the early stoppings and the history), so a
  resumed run continues exactly as an uninterrupted one would;
* one rule for existing checkpoints (:func:`resumes`).

Several processes (``dist``): every rank steps the same batches (its share of
each); rank 0 validates, checkpoints and logs.
"""

from __future__ import annotations

import contextlib
import logging
import math
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import torch
from tqdm.auto import tqdm

from ..errors import EsrError
from ..progress import Progress
from . import threads
from .averaging import WeightAverage
from .checkpoint import CheckpointStore, Generators, rng_state, set_rng_state
from .distributed import DistContext
from .stopping import EarlyStopping

log = logging.getLogger(__name__)


class EpochTask(Protocol):
    """One kind of training, as the loop sees it.

    ``metric``: the name of the validation score it monitors (higher is better), or None
    to monitor the epoch's mean training loss (lower is better).
    """

    model: torch.nn.Module
    metric: str | None

    def begin_epoch(self, epoch: int) -> None: ...
    def batches(self, epoch: int) -> Sequence[Any]: ...
    def loss(self, batch: Any, network: torch.nn.Module) -> torch.Tensor:
        """The batch's loss, one scalar; ``network`` is the model to call (wrapped for several processes)."""
        ...

    def validate(self) -> dict[str, float]:
        """The monitored score under ``metric``'s name first, then any others to record (rank 0 only)."""
        ...

    # Optional: ``parts(batch)``, the batch split into parts trained one after the other before one
    # optimiser step (their losses must add up to the batch's), each handed to ``loss``.
    # Optional: ``checkpoints_within_epochs`` False where ``begin_epoch`` keeps what the model computed
    # then, which a checkpoint inside the epoch does not hold (the loop then saves at epoch ends only).


@dataclass
class EpochRecord:
    """What one epoch left, handed to every callback after its checkpoint is written."""

    epoch: int
    loss: float
    scores: dict[str, float]  # monitored value per set of weights validated
    entry: dict  # the history entry


EpochCallback = Callable[[EpochRecord], None]


@dataclass
class TrainResult:
    """What a finished (or stopped) training leaves: one early-stopping state per set of weights
    monitored (``raw``, and ``average`` with weight averaging) and one record per epoch."""

    stoppings: dict[str, EarlyStopping]
    history: list[dict] = field(default_factory=list)
    resumed_from: int = 0
    best_state: dict[str, torch.Tensor] | None = None  # the best weights, kept here when there is no store

    @property
    def leader(self) -> str:
        """The weights with the best monitored value so far."""
        return max(self.stoppings, key=lambda name: _score(self.stoppings[name]))

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
        """Every set of weights has run out of patience on its own curve (the average rises later than
        the raw weights peak, so a raw peak cannot stop it)."""
        return all(stop.stopped for stop in self.stoppings.values())

    @property
    def armed(self) -> bool:
        return any(stop.armed for stop in self.stoppings.values())


def _score(stop: EarlyStopping) -> float:
    """A stopping's best value on a scale where higher is better (never-set: worst)."""
    if stop.best is None:
        return -math.inf
    return stop.best if stop.mode == "max" else -stop.best


def resumes(store: CheckpointStore | None, resume: bool | str, label: str) -> bool:
    """Whether a training continues from ``store``'s checkpoint: the one rule for every loop.

    ``resume`` False (``--restart``) starts over. True (``--resume``) continues, and
    stops with an error naming the file when the checkpoint was made with other
    settings or is damaged. "auto" (every command's default) continues a whole
    checkpoint of these settings and starts over, with a warning, from anything else.
    """
    if store is None or not resume:
        if store is not None and store.latest_epoch() is not None:
            log.warning(
                "%s: discarding the checkpoint after epoch %d in %s and starting over (--restart)",
                label,
                store.latest_epoch(),
                store.folder,
            )
        return False
    found = store.latest_epoch() is not None
    if not found:
        if store.exists():
            cannot_resume(f"{store.folder}: these checkpoints were made with other settings", resume, label)
        return False
    damage = store.verify()
    if damage is not None:
        cannot_resume(damage, resume, label)
        return False
    log.info("%s: continuing from the checkpoints in %s", label, store.folder)
    return True


def cannot_resume(problem: str, resume: bool | str, label: str, again: str = "starting over") -> None:
    """What a training does with saved state it cannot continue from (``problem`` names the file):
    ``--resume`` (True) stops with an error; "auto" warns and does the work ``again``."""
    if resume is True:
        raise EsrError(f"{problem}; run without --resume to start over")
    log.warning("%s: %s; %s", label, problem, again)


class TrainingLoop:
    """Trains ``task.model`` with ``optimizer`` for at most ``epochs``.

    ``rule()``: a fresh early stopping (its mode says whether the monitored value is a
    validation score, "max", or the loss, "min"). ``store``: checkpoints and the best
    weights (None: neither is written; the best weights stay in memory).
    ``generators``: the task's own random generators, checkpointed with the rest.
    """

    def __init__(
        self,
        task: EpochTask,
        optimizer: torch.optim.Optimizer,
        rule: Callable[[], EarlyStopping],
        epochs: int,
        store: CheckpointStore | None = None,
        average: WeightAverage | None = None,
        generators: Generators | None = None,
        dist: DistContext | None = None,
        label: str = "train",
        callbacks: Iterable[EpochCallback] = (),
        log_every: int = 1,
        checkpoint_seconds: float = 0.0,
    ):
        self.task = task
        self.optimizer = optimizer
        self.rule = rule
        self.epochs = epochs
        self.store = store
        self.average = average
        self.generators = dict(generators or {})
        self.dist = dist or DistContext()
        self.label = label
        self.callbacks = list(callbacks)
        self.log_every = log_every
        # a checkpoint inside an epoch after this many seconds since the last (0: at epoch ends only); the
        # process that writes checkpoints only, and not for a task that cannot continue from one
        writes = store is not None and self.dist.is_main and getattr(task, "checkpoints_within_epochs", True)
        self.checkpoint_seconds = checkpoint_seconds if writes else 0.0
        self.network = self.dist.wrap(task.model, _device_of(task.model))

    def stoppings(self) -> dict[str, EarlyStopping]:
        names = ["raw"] + (["average"] if self.average is not None else [])
        return {name: self.rule() for name in names}

    def fit(self, resume: bool | str = False) -> TrainResult:
        """Train until every early stopping has stopped or ``epochs``; ``resume`` as in :func:`resumes`."""
        result, within = TrainResult(self.stoppings()), None
        continues = self.dist.broadcast(float(resumes(self.store, resume, self.label) if self.dist.is_main else 0))
        if continues > 0:
            result, within = self._restore()
        elif self.dist.is_main and self.store is not None:
            self.store.start()
        show = None if self.dist.is_main else True  # tqdm's None: a bar on terminals only (epochs log lines)
        with tqdm(total=self.epochs, initial=result.epochs, desc=self.label, unit="epoch", disable=show) as bar:
            while not result.stopped and result.epochs < self.epochs:
                start = time.perf_counter()
                loss = self.train_epoch(result.epochs + 1, result, within)
                within = None
                trained = time.perf_counter() - start
                scores, extra = self._monitor(result, loss)
                record = self._record(result, loss, scores, extra, trained, time.perf_counter() - start)
                self._save(result)
                bar.update(1)
                bar.set_postfix(loss=f"{loss:.4f}", best=f"{result.best_score:.4f}")
                for callback in self.callbacks:
                    callback(record)
        return result

    def train_epoch(self, epoch: int, result: TrainResult | None = None, within: _Within | None = None) -> float:
        """One pass over the task's batches; returns the mean batch loss (over every process). With
        ``checkpoint_seconds`` and a ``result`` to record, long epochs also checkpoint part-way;
        ``within``: the checkpoint inside this epoch to continue from."""
        threads.adapt()  # another job may have started or ended since the last epoch
        batches, start_rng = self._epoch_batches(epoch, within)
        self.network.train()
        total, seen = (within.loss_total, within.batches) if within else (0.0, 0)
        desc = f"{self.label}: epoch {epoch}"
        saved = time.perf_counter()
        show = len(batches) > 1 and self.dist.is_main
        with Progress(len(batches), desc, "batch", show=show, leave=False, initial=seen) as progress:
            for batch in batches[seen:]:
                total += self.step(batch)
                seen += 1
                progress.update(loss=f"{total * self.dist.world / seen:.4f}")  # rank 0's share, scaled
                due = self.checkpoint_seconds and time.perf_counter() - saved >= self.checkpoint_seconds
                if due and result is not None and seen < len(batches):
                    self._save_within(result, _Within(epoch, seen, total, start_rng))
                    saved = time.perf_counter()
        return self.dist.sum(total) / max(seen, 1)

    def _epoch_batches(self, epoch: int, within: _Within | None) -> tuple[Sequence[Any], tuple[dict, dict] | None]:
        """The epoch's batches and, where checkpoints are made inside epochs, the random state they were
        drawn from. Continuing ``within`` an epoch, they are drawn again from that state, and the random
        state saved part-way is put back."""
        now = rng_state(self.generators) if within else None
        if within:
            set_rng_state(*within.start_rng, self.generators)
        start_rng = rng_state(self.generators) if self.checkpoint_seconds else None
        self.task.begin_epoch(epoch)
        batches = self.task.batches(epoch)
        if now is not None:
            set_rng_state(*now, self.generators)
        return batches, start_rng

    def step(self, batch: Any) -> float:
        """One optimiser step; returns this process's share of the batch loss. A task that splits its
        batches (``parts``) has each part's gradient added before the step, synchronised once."""
        parts = self.task.parts(batch) if hasattr(self.task, "parts") else [batch]
        self.optimizer.zero_grad(set_to_none=True)
        total = 0.0
        for index, part in enumerate(parts):
            last = index == len(parts) - 1
            with contextlib.nullcontext() if last else self.dist.no_sync(self.network):
                loss = self.task.loss(part, self.network)
                if not torch.isfinite(loss):
                    raise EsrError(
                        f"{self.label}: training diverged: the loss became {float(loss)}; lower the learning "
                        f"rate (now {self.optimizer.param_groups[0]['lr']:g}) or check the inputs"
                    )
                (loss * self.dist.world).backward()  # DDP averages over ranks; the losses use global counts
            total += float(loss.detach())
        if self.average is not None:
            self.average.before_step()  # a sparse table's rows catch up before the step changes them
        self.optimizer.step()
        if self.average is not None:
            self.average.update()
        return total

    # ------------------------------------------------------------ monitoring

    def _monitor(self, result: TrainResult, loss: float) -> tuple[dict[str, float], dict[str, float]]:
        """The monitored value of each set of weights still running, and the extra scores of the leader."""
        if self.task.metric is None:
            return {name: loss for name, stop in result.stoppings.items() if not stop.stopped}, {}
        scores, extra = {}, {}
        for name, stop in result.stoppings.items():
            if not stop.stopped:
                with self.weights_in_model(name):
                    scores[name], extra[name] = self._validate()
        return scores, extra[max(scores, key=scores.get)]

    def _validate(self) -> tuple[float, dict[str, float]]:
        """(monitored score, other scores): rank 0 validates, every rank receives the monitored score."""
        found = self.task.validate() if self.dist.is_main else {self.task.metric: 0.0}
        monitored = self.dist.broadcast(found[self.task.metric])
        return monitored, {key: value for key, value in found.items() if key != self.task.metric}

    def weights_in_model(self, name: str) -> contextlib.AbstractContextManager:
        """The model holds the ``name``d weights (``raw``: its own; ``average``) inside the block."""
        return self.average.applied() if name == "average" else contextlib.nullcontext()

    def _record(self, result, loss, scores, extra, trained, seconds) -> EpochRecord:
        before = _score(result.stoppings[result.leader])
        for name, score in scores.items():
            result.stoppings[name].update(score)
        validated = self.task.metric is not None
        weights = max(scores, key=lambda n: scores[n] if validated else -scores[n])
        entry: dict[str, Any] = {"epoch": result.epochs, "loss": round(loss, 6)}
        if validated:
            entry[f"valid_{self.task.metric}"] = round(scores[weights], 6)
            entry["weights"] = weights
            if self.average is not None:  # each running set's own score, for their curves
                entry.update({f"valid_{name}": round(score, 6) for name, score in scores.items()})
            entry.update({f"valid_{key}": round(value, 6) for key, value in extra.items()})
        entry.update(train_seconds=round(trained, 3), seconds=round(seconds, 3))
        result.history.append(entry)
        last = result.stopped or result.epochs == self.epochs
        if self.dist.is_main and (result.epochs % self.log_every == 0 or last):
            self._log(result, loss, scores[weights], weights, seconds, validated)
        if self.dist.is_main and _score(result.stoppings[result.leader]) > before:
            with self.weights_in_model(result.leader):
                self._keep_best(result)
        return EpochRecord(result.epochs, loss, scores, entry)

    def _log(self, result, loss, score, weights, seconds, validated) -> None:
        if validated:
            log.info(
                "%s: epoch %d: loss %.4f, valid %s %.4f (%s weights), best %.4f at epoch %d, %.1f s",
                self.label,
                result.epochs,
                loss,
                self.task.metric,
                score,
                weights,
                result.best_score,
                result.best_epoch,
                seconds,
            )
        else:
            log.info(
                "%s: epoch %d/%d loss %.4f (best %.4f at epoch %d), %.3f s",
                self.label,
                result.epochs,
                self.epochs,
                loss,
                result.best_score,
                result.best_epoch,
                seconds,
            )

    def _keep_best(self, result: TrainResult) -> None:
        state = self.task.model.state_dict()
        if self.store is not None:
            self.store.save_best(state)
        else:
            result.best_state = {k: v.detach().clone() for k, v in state.items()}

    def best_state(self, result: TrainResult) -> dict[str, torch.Tensor]:
        """The best weights of a finished training."""
        if self.store is not None:
            from .checkpoint import load_state

            return load_state(self.store.best_path(), _device_of(self.task.model))
        return result.best_state if result.best_state is not None else self.task.model.state_dict()

    # ------------------------------------------------------------ checkpoints

    def _save(self, result: TrainResult, within: _Within | None = None) -> None:
        """A checkpoint after ``result.epochs`` epochs, or ``within`` the next one. Inside an epoch
        the weight average is saved as it stands (rows not caught up), so a run that continues from
        it computes exactly what the uninterrupted run computed."""
        if not self.dist.is_main or self.store is None:
            return
        states = {"model": self.task.model.state_dict(), "optimizer": self.optimizer.state_dict()}
        if self.average is not None:
            states["average"] = self.average.exact_state() if within else self.average.state_dict()
        stoppings = {name: stop.state_dict() for name, stop in result.stoppings.items()}
        progress = {"stoppings": stoppings, "history": result.history}
        name = None
        if within is not None:
            states["rng_epoch_start"] = within.start_rng[0]
            progress["within"] = {**within.scalars(), "rng_epoch_start": within.start_rng[1]}
            name = f"epoch-{within.epoch:05d}-batch-{within.batches:07d}.pt"
        self.store.save(result.epochs, states, progress, self.generators, name=name)

    def _save_within(self, result: TrainResult, within: _Within) -> None:
        start = time.perf_counter()
        self._save(result, within)
        seconds = time.perf_counter() - start
        log.info("%s: checkpoint after batch %d of epoch %d, %.1f s", self.label, within.batches, within.epoch, seconds)

    def _restore(self) -> tuple[TrainResult, _Within | None]:
        """The training as the store's checkpoint left it, and where inside an epoch (None: at its end)."""
        states, progress = self.store.load(self.generators)
        self.task.model.load_state_dict(states["model"])
        self.optimizer.load_state_dict(states["optimizer"])
        within = progress.get("within")
        if self.average is not None:
            load = self.average.load_exact_state if within else self.average.load_state_dict
            load(states["average"])
        stoppings = self.stoppings()
        for name, stop in stoppings.items():
            stop.load_state_dict(progress["stoppings"][name])
        result = TrainResult(stoppings, progress["history"])
        result.resumed_from = result.epochs
        if within is None:
            log.info("%s: resuming after epoch %d", self.label, result.epochs)
            return result, None
        start_rng = (states["rng_epoch_start"], within["rng_epoch_start"])
        log.info("%s: resuming epoch %d after its batch %d", self.label, within["epoch"], within["batches"])
        return result, _Within(within["epoch"], within["batches"], within["loss_total"], start_rng)


@dataclass
class _Within:
    """Where a checkpoint inside an epoch stands: batches done, their summed loss, and the random
    state the epoch's batches were drawn from ((tensors, JSON scalars) as :func:`rng_state` gives)."""

    epoch: int
    batches: int
    loss_total: float
    start_rng: tuple[dict, dict]

    def scalars(self) -> dict[str, Any]:
        return {"epoch": self.epoch, "batches": self.batches, "loss_total": self.loss_total}


def _device_of(model: torch.nn.Module) -> torch.device:
    first = next(model.parameters(), None)
    return first.device if first is not None else torch.device("cpu")
