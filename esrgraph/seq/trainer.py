"""Training one recommender for one seed: batches, sampled negatives, early stopping, checkpoints.

Every epoch ends with a checkpoint (model, optimizer, every random state and the
early-stopping state) so that ``--resume`` after an interruption continues
exactly as an uninterrupted run would. The best model by validation NDCG@10 is
kept separately. Checkpoints are plain ``state_dict`` files plus JSON, loadable
with ``torch.load(..., weights_only=True)``.
"""

from __future__ import annotations

import io
import json
import logging
import random
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch
from tqdm.auto import tqdm

from ..artifacts import atomic_write_bytes, write_json
from ..errors import EsrError
from ..eval.evaluate import Evaluator
from .batches import Batch, SequenceData
from .config import SeqConfig, TrainConfig
from .distill import Distiller
from .distributed import DistContext
from .model import SeqRecommender

log = logging.getLogger(__name__)
VALID_METRIC = "NDCG@10"


@dataclass
class TrainState:
    epoch: int = 0  # epochs completed
    best_score: float = -1.0
    best_epoch: int = 0
    bad_epochs: int = 0
    done: bool = False
    history: list[dict] = field(default_factory=list)


class Trainer:
    def __init__(self, model: SeqRecommender, data: SequenceData, seq: SeqConfig, train: TrainConfig,
                 evaluator: Evaluator, distiller: Distiller | None, device: torch.device,
                 dist: DistContext, checkpoints: Path):
        self.model = model
        self.data = data
        self.seq = seq
        self.cfg = train
        self.evaluator = evaluator
        self.distiller = distiller
        self.device = device
        self.dist = dist
        self.checkpoints = checkpoints
        self.users = data.trainable_users()
        self.train_lengths = np.array([len(data.train_sequence(u)) for u in range(data.num_users)])
        if len(self.users) == 0:
            raise EsrError("no user has a training sequence of 2 or more items; nothing to train on")
        if len(self.users) < dist.world:  # every rank needs a user of each batch
            raise EsrError(f"{len(self.users)} users have a training sequence, fewer than the {dist.world} "
                           "processes; launch at most that many")
        self.network = dist.wrap(model, device)
        self.optimizer = torch.optim.Adam(model.parameters(), lr=train.lr, weight_decay=train.weight_decay)

    # ------------------------------------------------------------------ loop

    def fit(self, seed: int, resume: bool) -> TrainState:
        rng, generator = np.random.default_rng(seed), torch.Generator().manual_seed(seed)
        state = TrainState()
        if resume and (self.checkpoints / "last.pt").is_file():
            state = self._load(rng, generator)
            log.info("resuming seed %d after epoch %d", seed, state.epoch)
        while not state.done and state.epoch < self.cfg.epochs:
            start = time.perf_counter()
            loss = self._epoch(rng, generator, state.epoch + 1)
            score = self._validate()
            self._record(state, loss, score, time.perf_counter() - start)
            self._save(state, rng, generator)
        return state

    def _epoch(self, rng: np.random.Generator, generator: torch.Generator, epoch: int) -> float:
        if self.distiller is not None:
            self.distiller.start_epoch(self.model, self.device)
        self.network.train()
        order = self._order(rng)
        size = self.cfg.batch_size
        bounds = batch_bounds(len(order), size, self.dist.world)
        if self.cfg.max_batches:
            bounds = bounds[: self.cfg.max_batches]
        total, seen = 0.0, 0
        bar = tqdm(bounds, desc=f"epoch {epoch}", unit="batch", leave=False, disable=None if self.dist.is_main else True)
        for lo, hi in bar:
            value = self._step(order[lo: hi], generator)
            total += value
            seen += 1
            bar.set_postfix(loss=f"{total * self.dist.world / seen:.4f}")  # rank 0's share, scaled
        return self.dist.sum(total) / max(seen, 1)  # every rank steps the same batches

    def _order(self, rng: np.random.Generator) -> np.ndarray:
        """This epoch's user order: random, or random batches of similar lengths (``length_buckets``)."""
        order = rng.permutation(self.users)
        buckets, size = self.cfg.length_buckets, self.cfg.batch_size
        if buckets <= 1:
            return order
        window = buckets * size
        for lo in range(0, len(order), window):
            part = order[lo: lo + window]
            order[lo: lo + window] = part[np.argsort(self.train_lengths[part], kind="stable")]
        batches = [order[lo: lo + size] for lo in range(0, len(order), size)]
        return np.concatenate([batches[i] for i in rng.permutation(len(batches))])

    def _step(self, users: np.ndarray, generator: torch.Generator) -> float:
        batch = self._training_batch(users, generator)
        negatives = self._negatives(batch.targets, generator) if self.cfg.loss == "bce" else None
        positions = float((batch.targets > 0).sum())
        share = self.dist.share(len(users))
        local = batch.rows(share).to(self.device)
        local_negatives = negatives[share].to(self.device) if negatives is not None else None
        history = None
        if self.model.bidirectional and self.distiller is not None:
            history = self.data.history_batch(users[share], "train", self.model.appended_tokens).to(self.device)
        loss, students = self.network(local, local_negatives, max(positions, 1.0), self.cfg.loss, history)
        if self.distiller is not None:
            teachers = self.distiller.teachers(self.model, users[share], self.device)
            weights = self._distill_weights(local.users)
            loss = loss + self.seq.distill.alpha * self.distiller.loss(students, teachers, float(len(users)), weights)
        self.optimizer.zero_grad(set_to_none=True)
        (loss * self.dist.world).backward()  # DDP averages over ranks; the losses use global counts
        self.optimizer.step()
        return float(loss.detach())  # this rank's share of the batch loss (global counts)

    def _distill_weights(self, users: torch.Tensor) -> torch.Tensor | None:
        """Head users skip self-distillation when the head/tail heads say so."""
        heads = self.model.heads
        if heads is None or self.seq.heads.distill_head_users:
            return None
        return heads.tail_users[users].float()

    def _training_batch(self, users: np.ndarray, generator: torch.Generator) -> Batch:
        if not self.model.bidirectional:
            return self.data.training_batch(users)
        # Bert4Rec: mask a share of each training sequence (at least one item) and predict it.
        batch = self.data.history_batch(users, "train")
        real = batch.items > 0
        masked = (torch.rand(batch.items.shape, generator=generator) < self.seq.mask_prob) & real
        none = ~masked.any(1)
        width = batch.items.shape[1]
        last = torch.full_like(batch.lengths, width - 1) if self.seq.reference_padding else batch.lengths - 1
        masked[none, last[none]] = True
        targets = torch.where(masked, batch.items, torch.zeros_like(batch.items))
        items = torch.where(masked, torch.full_like(batch.items, self.model.mask_token), batch.items)
        return Batch(batch.users, items, batch.lengths, targets)

    def _negatives(self, targets: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        return sample_negatives(targets, self.data.num_items, self.cfg.negatives, generator)

    # --------------------------------------------------------- validation

    def _validate(self) -> float:
        score = 0.0
        if self.dist.is_main:
            metrics = self.evaluator.evaluate(self.model, "valid", [self.cfg.valid_protocol])
            score = metrics[self.cfg.valid_protocol]["overall"][VALID_METRIC]
        return self.dist.broadcast(score)

    def _record(self, state: TrainState, loss: float, score: float, seconds: float) -> None:
        state.epoch += 1
        improved = score > state.best_score
        if improved:
            state.best_score, state.best_epoch, state.bad_epochs = score, state.epoch, 0
        else:
            state.bad_epochs += 1
        state.done = state.bad_epochs >= self.cfg.patience and state.epoch >= self.cfg.min_epochs
        state.history.append({"epoch": state.epoch, "loss": round(loss, 6), f"valid_{VALID_METRIC}": round(score, 6),
                              "seconds": round(seconds, 3)})
        if self.dist.is_main:
            log.info("epoch %d: loss %.4f, valid %s %.4f (%s), best %.4f at epoch %d, %.1f s", state.epoch, loss,
                     VALID_METRIC, score, self.cfg.valid_protocol, state.best_score, state.best_epoch, seconds)
        if improved and self.dist.is_main:
            save_state(self.checkpoints / "best.pt", self.model.state_dict())

    # --------------------------------------------------------- checkpoints

    def _save(self, state: TrainState, rng: np.random.Generator, generator: torch.Generator) -> None:
        if not self.dist.is_main:
            return
        meta = {"train_state": asdict(state), "numpy_rng": rng.bit_generator.state,
                "python_rng": list(random.getstate()[1])}
        checkpoint = {
            "model": self.model.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "torch_rng": torch.get_rng_state(),
            "sampler_rng": generator.get_state(),
            "meta": json.dumps(meta),  # one file: no interruption can pair weights with another epoch's counters
        }
        if self.device.type == "cuda":  # dropout on the GPU draws from the device's own generator
            checkpoint["cuda_rng"] = torch.cuda.get_rng_state(self.device)
        save_state(self.checkpoints / "last.pt", checkpoint)
        write_json(self.checkpoints / "state.json", meta)  # a readable copy; resuming reads last.pt

    def _load(self, rng: np.random.Generator, generator: torch.Generator) -> TrainState:
        saved = torch.load(self.checkpoints / "last.pt", map_location="cpu", weights_only=True)
        if "meta" in saved:
            meta = json.loads(saved["meta"])
        else:  # a checkpoint of an earlier version kept the counters only in state.json
            meta = json.loads((self.checkpoints / "state.json").read_text())
        self.model.load_state_dict(saved["model"])
        self.optimizer.load_state_dict(saved["optimizer"])
        torch.set_rng_state(saved["torch_rng"])
        if "cuda_rng" in saved and self.device.type == "cuda":
            torch.cuda.set_rng_state(saved["cuda_rng"], self.device)
        generator.set_state(saved["sampler_rng"])
        rng.bit_generator.state = meta["numpy_rng"]
        random.setstate((3, tuple(meta["python_rng"]), None))
        return TrainState(**meta["train_state"])


def batch_bounds(rows: int, size: int, world: int = 1) -> list[tuple[int, int]]:
    """(start, end) of each batch of ``size`` rows; with several processes, a last batch too small
    to give every rank a row joins the batch before it instead of being dropped."""
    bounds = [(lo, min(lo + size, rows)) for lo in range(0, rows, size)]
    if world > 1 and len(bounds) > 1 and bounds[-1][1] - bounds[-1][0] < world:
        bounds[-2:] = [(bounds[-2][0], rows)]
    return bounds


def sample_negatives(targets: torch.Tensor, num_items: int, count: int, generator: torch.Generator) -> torch.Tensor:
    """[*targets.shape, count] uniform negatives from items 1..num_items, redrawn once where they hit the positive."""
    shape = (*targets.shape, count)
    negatives = torch.randint(1, num_items + 1, shape, generator=generator)
    redraw = torch.randint(1, num_items + 1, shape, generator=generator)
    return torch.where(negatives == targets.unsqueeze(-1), redraw, negatives)


def save_state(path: Path, data: dict) -> None:
    """torch.save, written atomically (an interruption leaves the previous file whole)."""
    buffer = io.BytesIO()
    torch.save(data, buffer)
    atomic_write_bytes(path, buffer.getvalue())
