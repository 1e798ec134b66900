"""Training a recommender completely, in one call: :func:`train_recommender`.

Training, then what a trained model still needs before it recommends: the
user-group readouts fitted on the frozen model with their θ chosen on
validation (``seq.readouts.mode: fitted``), and the id embeddings of items
nobody interacted with mapped from their other views (cold items kept). The
``seq`` stage, the Python API and the benchmarks all call this function, so
they give the same model for the same config and seed.

A shared model trained elsewhere (an explicit input: :class:`SharedModel`)
replaces the training: fitted readouts leave the shared model's training as
it would be without them, draw for draw, so a model trained with the same
settings and no readouts is that model.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import torch

from ..artifacts import read_json, sha256_file, write_json
from ..data.sequences import SequenceData
from ..errors import EsrError
from ..eval.evaluate import Evaluator
from ..eval.metrics import VALID_METRIC
from ..training.checkpoint import CheckpointStore, load_state, save_state
from ..training.distributed import DistContext
from ..training.loop import EpochCallback, cannot_resume
from .build import RecommenderInputs, build_evaluator, build_recommender, build_trainer
from .cold import map_cold_items
from .fit_readouts import fit_readouts
from .model import SeqRecommender
from .popularity import fit_popularity_correction
from .store import history_file, model_file
from .theta import tune_theta


@dataclass
class SharedModel:
    """A trained shared model to start from instead of training: its weights, training summary and history."""

    state: dict[str, torch.Tensor]
    summary: dict
    history: list[dict]
    source: str  # where it came from (named in the summary)


@dataclass
class TrainedRecommender:
    """A recommender ready to recommend: best weights, readouts fitted, cold items mapped."""

    model: SeqRecommender
    seed: int
    summary: dict  # best epoch and validation score, epochs, popularity floor, readouts, cold items
    history: list[dict] = field(default_factory=list)  # one record per epoch


def train_recommender(
    cfg,
    inputs: RecommenderInputs,
    seed: int,
    device: torch.device | str = "cpu",
    store: CheckpointStore | None = None,
    resume: bool | str = False,
    dist: DistContext | None = None,
    shared: SharedModel | None = None,
    data: SequenceData | None = None,
    evaluator: Evaluator | None = None,
    callbacks: tuple[EpochCallback, ...] = (),
) -> TrainedRecommender:
    """Train the configured recommender for ``seed`` and finish it (readouts, cold items).

    ``store``: checkpoints and the best weights (None: kept in memory, no resume);
    ``resume`` as :func:`~esrgraph.training.loop.resumes` says; ``dist``: several
    processes under torchrun (rank 0 finishes the model, the others return it as trained).
    """
    dist = dist or DistContext()
    model = build_recommender(cfg, inputs, seed, device)
    finished = _finished(store, model, seed, resume) if resume and dist.world == 1 else None
    if finished is not None:  # this seed was finished before an interruption
        return finished
    data = data or inputs.sequences(cfg)
    evaluator = evaluator or build_evaluator(cfg, data, device)
    if shared is not None:
        _take_shared(model, shared)
        summary, history = {**shared.summary, "shared_model_from": shared.source}, shared.history
    else:
        trainer = build_trainer(cfg, inputs, model, store, device, dist, data, evaluator)
        result = trainer.fit(seed, resume, callbacks)
        if dist.is_main:  # rank 0 kept the best weights; the other processes' models are not used after
            model.load_state_dict(trainer.finish(result))
        summary = {
            "best_epoch": result.best_epoch,
            f"best_valid_{VALID_METRIC}": result.best_score,
            "epochs": result.epochs,
            f"popularity_valid_{VALID_METRIC}": trainer.floor,
        }
        history = result.history
    if dist.is_main and model.readouts is not None and model.readouts.fitted_mode:
        summary["readouts"] = fit_and_tune_readouts(model, data, evaluator, cfg, seed)
        summary[f"valid_{VALID_METRIC}_with_readouts"] = summary["readouts"][f"valid_{VALID_METRIC}"]
        summary[f"valid_{VALID_METRIC}_finished"] = summary["readouts"][f"valid_{VALID_METRIC}"]
    if dist.is_main and model.num_warm < model.num_items:
        summary["cold_items"] = map_cold_items(model)
    if dist.is_main and model.item_bias is not None:
        summary["popularity_correction"] = fit_popularity_correction(model, evaluator, cfg.train.valid_protocol)
        summary[f"valid_{VALID_METRIC}_finished"] = summary["popularity_correction"][f"valid_{VALID_METRIC}"]
    trained = TrainedRecommender(model.eval(), seed, summary, history)
    if store is not None and dist.is_main:
        _keep_finished(store, trained)
    return trained


FINISHED = "finished"


def _keep_finished(store: CheckpointStore, trained: TrainedRecommender) -> None:
    """The finished model beside the seed's checkpoints: a resumed run takes it instead of finishing it again."""
    weights = store.folder / f"{FINISHED}.pt"
    save_state(weights, trained.model.state_dict())
    record = {
        "identity": store.identity,
        "sha256": sha256_file(weights),
        "summary": trained.summary,
        "history": trained.history,
    }
    write_json(store.folder / f"{FINISHED}.json", record)  # last: a record means the weights are whole


def _finished(
    store: CheckpointStore | None, model: SeqRecommender, seed: int, resume: bool | str
) -> TrainedRecommender | None:
    """The seed's finished model from before an interruption (loaded into ``model``), or None.

    A damaged record or model follows the checkpoints' rule (:func:`~esrgraph.training.loop.resumes`):
    ``--resume`` stops naming the file, "auto" finishes the seed again with a warning.
    """
    if store is None or not (store.folder / f"{FINISHED}.json").is_file():
        return None
    path = store.folder / f"{FINISHED}.json"
    try:
        record = read_json(path)
        if not isinstance(record, dict) or record.get("identity") != store.identity:
            return None
        weights = store.folder / f"{FINISHED}.pt"
        expected = record.get("sha256")  # records written before it was kept have none: loading checks them
        if not weights.is_file() or (expected is not None and sha256_file(weights) != expected):
            raise EsrError(f"{weights}: damaged or missing (its sha256 differs from the one in {path.name})")
        model.load_state_dict(load_state(weights, model.input_device))
        return TrainedRecommender(model.eval(), seed, record["summary"], record["history"])
    except (ValueError, KeyError, EsrError) as err:  # JSONDecodeError is a ValueError
        damage = str(err) if isinstance(err, EsrError) else f"{path}: damaged ({err})"
    cannot_resume(damage, resume, "train-seq", f"finishing seed {seed} again")
    return None


def fit_and_tune_readouts(model: SeqRecommender, data: SequenceData, evaluator: Evaluator, cfg, seed: int) -> dict:
    """Fit the user-group readouts of the trained model and choose each group's θ on validation."""
    done = {"fit_loss": fit_readouts(model, data, cfg.seq.readouts, seed, positions=cfg.train.step_positions)}
    done.update(tune_theta(model, evaluator))
    protocol = cfg.train.valid_protocol
    done[f"valid_{VALID_METRIC}"] = evaluator.evaluate(model, "valid", [protocol])[protocol]["overall"][VALID_METRIC]
    return done


def _take_shared(model: SeqRecommender, shared: SharedModel) -> None:
    missing, unexpected = model.load_state_dict(shared.state, strict=False)
    if unexpected or any(not name.startswith("readouts.") for name in missing):
        names = ", ".join(list(unexpected) + [n for n in missing if not n.startswith("readouts.")][:5])
        raise ValueError(f"{shared.source}: the shared model does not fit this recommender ({names})")


def shared_model_from(folder: Path, seed: int) -> SharedModel | None:
    """The shared model of ``seed`` in a finished ``seq`` stage folder, or None when that seed is not there."""
    import json

    from ..artifacts import read_manifest
    from ..training.checkpoint import load_state

    summary = (read_manifest(folder) or {}).get("seeds", {}).get(str(seed))
    weights, history = model_file(folder, seed), history_file(folder, seed)
    if summary is None or not weights.is_file() or not history.is_file():
        return None
    return SharedModel(load_state(weights), summary, json.loads(history.read_text()), folder.name)
