"""The ``seq`` stage: train one recommender per seed; keep each seed's best model.

Reads ``dataset``, ``embed`` (every variant but ``plain``) and ``gnn`` (with a
graph fusion) as arrays (:class:`~esrgraph.seq.build.RecommenderInputs`): DGL
is never imported here. Outputs: ``model-seed<S>.pt`` (best state_dict by
validation NDCG@10), ``history-seed<S>.json`` (loss and validation per epoch)
and ``model.json`` (what is needed to rebuild the model). Checkpoints live
beside the stage in ``seq.checkpoints/seed-<S>/`` until the stage completes,
so an interrupted run resumes.
"""

from __future__ import annotations

import json
import logging
import shutil
from dataclasses import replace
from pathlib import Path

import torch

from ..artifacts import is_up_to_date, read_json, read_manifest, write_json
from ..errors import EsrError
from ..seq.build import RecommenderInputs, build_evaluator, build_recommender, build_trainer, model_tensors
from ..seq.cold import map_cold_items
from ..seq.config import ReadoutsConfig
from ..seq.fit_readouts import fit_readouts
from ..seq.store import model_spec
from ..seq.theta import tune_theta
from ..training.checkpoint import CheckpointStore, load_state, save_state
from ..training.device import resolve_device
from . import Stage, StageRun

log = logging.getLogger(__name__)
NAME = "seq"


def reads(cfg) -> tuple[str, ...]:
    names = ["dataset"]
    if cfg.seq.variant != "plain":
        names.append("embed")
    if cfg.seq.fusion != "none":
        names.append("gnn")
    return tuple(names)


def section(cfg) -> dict:
    """The settings the trained models depend on."""
    out = {"seq": cfg.seq, "train": cfg.train}
    if cfg.train.valid_protocol == "sampled":
        out["eval"] = {"sampled_negatives": cfg.eval.sampled_negatives, "negative_seed": cfg.eval.negative_seed}
    return out


def checkpoint_root(run) -> Path:
    folder = run.stage_dir(NAME)
    return folder.with_name(folder.name + ".checkpoints")


def produce(ctx: StageRun, out: Path | None) -> dict:
    """Train every seed (``out`` is None on the other processes of a multi-process run: rank 0 writes)."""
    cfg, dist = ctx.cfg, ctx.dist
    device = resolve_device(cfg.train.device, dist.local_rank)
    inputs = RecommenderInputs.from_folders(cfg, ctx.inputs)
    data = inputs.sequences(cfg)
    evaluator = build_evaluator(cfg, data, device)
    donor = trained_shared_model(ctx) if dist.world == 1 else None
    summary, tensors = {}, model_tensors(cfg, inputs)
    for seed in cfg.train.seeds:
        store = CheckpointStore(checkpoint_root(ctx.run) / f"seed-{seed}", ctx.key)
        resume = _resumes(store, ctx.resume, dist)
        model = build_recommender(cfg, inputs, seed, device)
        taken = take_shared_model(model, donor, seed, store, resume) if donor is not None else None
        if taken is not None:
            summary[str(seed)], history = taken, json.loads((donor / f"history-seed{seed}.json").read_text())
        else:
            trainer = build_trainer(cfg, inputs, model, store, device, dist, data, evaluator)
            result = trainer.fit(seed, resume)
            summary[str(seed)] = {
                "best_epoch": result.best_epoch,
                "best_valid_NDCG@10": result.best_score,
                "epochs": result.epochs,
                "popularity_valid_NDCG@10": trainer.floor,
            }
            history = result.history
        if cfg.seq.readouts.mode == "fitted" and dist.is_main:
            readouts = fit_and_tune_readouts(model, store, data, evaluator, cfg, seed)
            summary[str(seed)]["readouts"] = readouts
            summary[str(seed)]["valid_NDCG@10_with_readouts"] = readouts["valid_NDCG@10"]
        if inputs.dataset.num_warm < inputs.dataset.num_items and dist.is_main:
            summary[str(seed)]["cold_items"] = map_cold(model, store)
        if out is not None:
            shutil.copyfile(store.best_path(), out / f"model-seed{seed}.pt")
            write_json(out / f"history-seed{seed}.json", history)
    if out is not None:
        write_json(out / "model.json", model_spec(cfg.seq, inputs.dataset.num_items, tensors))
    return {"seeds": summary, "device": str(device), "world_size": dist.world}


def _resumes(store: CheckpointStore, resume: bool | str, dist) -> bool:
    """Whether this seed continues from its checkpoints (decided by rank 0, told to every rank).

    A damaged checkpoint stops ``--resume`` (True) with the file named; under
    "auto" (``esr pipeline``) the seed starts over instead.
    """
    continues = False
    if dist.is_main:
        found = store.latest_epoch() is not None
        if resume is True and store.exists() and not found:
            raise EsrError(
                f"{store.folder}: these checkpoints were made with other settings; run without --resume to start over"
            )
        damage = store.verify() if resume and found else None
        if damage is not None and resume is True:
            raise EsrError(f"{damage}; run without --resume to start over")
        if damage is not None:
            log.warning("seq: %s; this seed starts over", damage)
        continues = bool(resume) and found and damage is None
        if continues:
            log.info("seq: continuing from the checkpoints in %s", store.folder)
    return dist.broadcast(float(continues)) > 0


def fit_and_tune_readouts(model, store: CheckpointStore, data, evaluator, cfg, seed: int) -> dict:
    """Fit the user-group readouts of the best model and choose each group's θ on validation; saved with it."""
    path, record = store.best_path(), store.folder / "readouts.json"
    if record.is_file():  # a resumed run finished this seed's readouts before the interruption
        return read_json(record)
    model.load_state_dict(load_state(path, model.input_device))
    done = {"fit_loss": fit_readouts(model, data, cfg.seq.readouts, seed)}
    done.update(tune_theta(model, evaluator))
    protocol = cfg.train.valid_protocol
    done["valid_NDCG@10"] = evaluator.evaluate(model, "valid", [protocol])[protocol]["overall"]["NDCG@10"]
    save_state(path, model.state_dict())
    write_json(record, done)  # after the weights: a record means the saved model holds these readouts
    return done


def map_cold(model, store: CheckpointStore) -> dict:
    """Give the best model's cold items id embeddings mapped from their other views (:mod:`~esrgraph.seq.cold`)."""
    model.load_state_dict(load_state(store.best_path(), model.input_device))
    done = map_cold_items(model)
    save_state(store.best_path(), model.state_dict())
    return done


def trained_shared_model(ctx: StageRun) -> Path | None:
    """A finished stage of this run directory holding the shared model that training would make here, or None.

    Readouts fitted after training leave the shared model's training as it is
    without them, draw for draw; a stage trained with the same settings and
    no readouts holds that model.
    """
    cfg, run = ctx.cfg, ctx.run
    if cfg.seq.readouts.mode != "fitted":
        return None
    bare = replace(cfg, seq=replace(cfg.seq, readouts=ReadoutsConfig()))
    upstream = {name: run.stage_key(name) for name in reads(cfg)}
    wanted = run.key(NAME, section(bare), upstream)
    own = run.stage_dir(NAME)
    for folder in sorted(run.dir.glob(f"{NAME}*")):
        # the same key and every artifact whole (a damaged donor is not taken: this stage trains instead)
        if folder != own and folder.is_dir() and is_up_to_date(folder, wanted):
            return folder
    return None


def take_shared_model(model, donor: Path, seed: int, store: CheckpointStore, resume: bool) -> dict | None:
    """Start from the donor's best model of ``seed`` instead of training; returns its training summary."""
    summary = (read_manifest(donor) or {}).get("seeds", {}).get(str(seed))
    source = donor / f"model-seed{seed}.pt"
    if summary is None or not source.is_file():
        return None
    if resume and store.best_path().is_file():  # taken before the interruption, its readouts perhaps fitted
        return {**summary, "shared_model_from": donor.name}
    missing, unexpected = model.load_state_dict(torch.load(source, map_location="cpu", weights_only=True), strict=False)
    if unexpected or any(not name.startswith("readouts.") for name in missing):
        return None
    if not resume:
        store.start()
    store.save_best(model.state_dict())
    log.info(
        "seq: seed %d's shared model was trained with these settings in %s; only the readouts are fitted", seed, donor
    )
    return {**summary, "shared_model_from": donor.name}


STAGE = Stage(
    NAME,
    reads=reads,
    section=section,
    produce=produce,
    per_variant=True,
    distributed=True,
    checkpoints=True,
    device=lambda cfg: cfg.train.device,
)
