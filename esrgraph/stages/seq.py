"""The ``seq`` stage: train one recommender per seed (:func:`~esrgraph.seq.train.train_recommender`).

Reads ``dataset``, ``embed`` (variants with a semantic view) and ``gnn`` (with a
graph fusion) as arrays (:class:`~esrgraph.seq.build.RecommenderInputs`): DGL
is never imported here. Outputs: ``model-seed<S>.pt`` (the finished model of
each seed: best weights by validation NDCG@10, readouts fitted, cold items
mapped), ``history-seed<S>.json`` (loss and validation per epoch) and
``model.json`` (what is needed to rebuild the model). Checkpoints live beside
the stage in ``seq.checkpoints/seed-<S>/`` until the stage completes, so an
interrupted run resumes.

``seq.readouts.shared_model`` declares a finished seq stage whose shared
models the fitted readouts start from instead of training: it must have been
trained with these settings and no readouts, on the same upstream stages.
"""

from __future__ import annotations

import gc
import logging
from dataclasses import replace
from pathlib import Path

from ..artifacts import is_up_to_date, write_json
from ..errors import ConfigError
from ..seq.build import RecommenderInputs, build_evaluator, model_shapes
from ..seq.config import ReadoutsConfig, TrainConfig
from ..seq.store import history_file, model_file, model_spec, seed_checkpoints
from ..seq.train import SharedModel, shared_model_from, train_recommender
from ..seq.variants import variant_spec
from ..training.checkpoint import CheckpointStore, checkpoint_folder, save_state
from ..training.device import resolve_device
from . import Stage, StageRun

log = logging.getLogger(__name__)
NAME = "seq"


def reads(cfg) -> tuple[str, ...]:
    names = ["dataset"]
    if variant_spec(cfg.seq).text:
        names.append("embed")
    if cfg.seq.fusion != "none":
        names.append("gnn")
    return tuple(names)


def section(cfg) -> dict:
    """The settings the trained models depend on. Where a shared model comes from is not one (it is
    the model these settings train), nor are the readouts' settings of a model without readouts."""
    readouts = replace(cfg.seq.readouts, shared_model=None)
    if readouts.mode == "none":
        readouts = ReadoutsConfig()
    seq = replace(cfg.seq, readouts=readouts)
    train = replace(cfg.train, checkpoint_minutes=TrainConfig.checkpoint_minutes)  # when to save, not what
    out = {"seq": seq, "train": train}
    if cfg.train.valid_protocol == "sampled":
        out["eval"] = {"sampled_negatives": cfg.eval.sampled_negatives, "negative_seed": cfg.eval.negative_seed}
    return out


def checkpoint_root(run) -> Path:
    return checkpoint_folder(run.stage_dir(NAME))


def produce(ctx: StageRun, out: Path | None) -> dict:
    """Train every seed (``out`` is None on the other processes of a multi-process run: rank 0 writes)."""
    cfg, dist = ctx.cfg, ctx.dist
    device = resolve_device(cfg.train.device, dist.local_rank)
    inputs = RecommenderInputs.from_folders(cfg, ctx.inputs)
    data = inputs.sequences(cfg)
    evaluator = build_evaluator(cfg, data, device)
    donor = declared_shared_model(ctx.run)
    summary = {}
    for seed in cfg.train.seeds:
        store = CheckpointStore(seed_checkpoints(checkpoint_root(ctx.run), seed), ctx.key)
        shared = shared_for_seed(donor, seed)
        trained = train_recommender(
            cfg, inputs, seed, device, store, ctx.resume, dist, shared, data, evaluator, ctx.callbacks
        )
        summary[str(seed)] = trained.summary
        if out is not None:
            save_state(model_file(out, seed), trained.model.state_dict())
            write_json(history_file(out, seed), trained.history)
        del trained  # the next seed's model is built before this name would be bound again
        # the model, its trainer and training parts refer to each other: without a collection they
        # outlived the stage, and at a million items the evaluate stage loaded its model beside them
        gc.collect()
    if out is not None:
        write_json(out / "model.json", model_spec(cfg.seq, inputs.dataset.num_items, model_shapes(cfg, inputs)))
    return {"seeds": summary, "device": str(device), "world_size": dist.world}


def declared_shared_model(run) -> Path | None:
    """The declared ``seq.readouts.shared_model`` folder, checked: a finished seq stage trained with these
    settings and no readouts, on this run's upstream stages."""
    cfg = run.cfg
    declared = cfg.seq.readouts.shared_model
    if declared is None:
        return None
    folder = Path(declared)
    bare = replace(cfg, seq=replace(cfg.seq, readouts=ReadoutsConfig()))
    wanted = run.key(NAME, section(bare), {name: run.stage_key(name) for name in reads(cfg)})
    if not is_up_to_date(folder, wanted):
        raise ConfigError(
            f"seq.readouts.shared_model: {folder} is not a finished seq stage trained with these settings "
            "and no readouts on this run's data (or one of its files is damaged); train it first or leave it unset"
        )
    log.info("seq: the shared models come from %s; only the readouts are fitted", folder)
    return folder


def shared_for_seed(donor: Path | None, seed: int) -> SharedModel | None:
    if donor is None:
        return None
    shared = shared_model_from(donor, seed)
    if shared is None:
        raise ConfigError(f"seq.readouts.shared_model: {donor} holds no model of seed {seed}")
    return shared


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
