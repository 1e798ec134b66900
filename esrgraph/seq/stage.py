"""The ``seq`` stage: train one recommender per seed; keep each seed's best model.

Outputs: ``model-seed<S>.pt`` (best state_dict by validation NDCG@10),
``history-seed<S>.json`` (loss and validation per epoch) and ``model.json``
(what is needed to rebuild the model). Checkpoints live beside the stage in
``seq.checkpoints/`` until the stage completes, so an interrupted run resumes.
"""

from __future__ import annotations

import json
import logging
import shutil
from dataclasses import asdict
from pathlib import Path

import numpy as np
import torch

from ..artifacts import read_json, write_json
from ..config import Config
from ..data import stage as data_stage
from ..data.dataset import Dataset
from ..errors import EsrError
from ..eval.evaluate import Evaluator
from ..runs import Run
from ..text import stage as text_stage
from .batches import SequenceData
from .config import SeqConfig
from .distill import Distiller
from .distributed import DistContext, resolve_device
from .model import SeqRecommender
from .trainer import Trainer

log = logging.getLogger(__name__)
STAGE = "seq"


def stage_section(cfg: Config) -> dict:
    """The settings the trained models depend on."""
    section = {"seq": asdict(cfg.seq), "train": asdict(cfg.train)}
    if cfg.train.valid_protocol == "sampled":
        section["eval"] = {"sampled_negatives": cfg.eval.sampled_negatives, "negative_seed": cfg.eval.negative_seed}
    return section


def train_seq(run: Run, resume: bool = False) -> Path:
    """Train (or find up to date) the configured recommender for every seed; returns the stage folder."""
    cfg = run.cfg
    device = resolve_device(cfg.train.device)
    dist = DistContext.from_env(device)
    if dist.active:
        device = resolve_device(cfg.train.device, dist.local_rank)
    if not dist.is_main:
        dist.barrier()  # rank 0 prepares the upstream stages first
    ds, upstream, embed_dir = _upstream(run)
    if dist.is_main:
        dist.barrier()
    key = run.key(STAGE, stage_section(cfg), upstream)
    will_train = dist.broadcast(float(not run.is_current(STAGE, key))) > 0

    def produce(out: Path | None) -> dict:
        return _train_all(run, ds, embed_dir, device, dist, key, resume, out)

    if dist.is_main:
        out = run.run_stage(STAGE, stage_section(cfg), upstream, produce)
        shutil.rmtree(checkpoint_root(run), ignore_errors=True)  # the stage holds the best models now
    else:
        if will_train:
            produce(None)
        out = run.stage_dir(STAGE)
    dist.barrier()
    return out


def checkpoint_root(run: Run) -> Path:
    return run.dir / f"{STAGE}.checkpoints"


def _upstream(run: Run) -> tuple[Dataset, dict[str, str], Path | None]:
    ds = data_stage.prepare(run)
    upstream = {data_stage.STAGE: run.stage_key(data_stage.STAGE)}
    embed_dir = None
    if run.cfg.seq.variant != "plain":
        embed_dir = text_stage.embed(run)
        upstream[text_stage.STAGE] = run.stage_key(text_stage.STAGE)
    return ds, upstream, embed_dir


def _train_all(run: Run, ds: Dataset, embed_dir: Path | None, device: torch.device, dist: DistContext,
               key: str, resume: bool, out: Path | None) -> dict:
    cfg = run.cfg
    data = SequenceData(ds, cfg.seq.max_length, cfg.seq.reference_padding)
    llm = pca = similar = None
    if embed_dir is not None:
        llm = torch.from_numpy(np.load(embed_dir / "item_llm.npy"))
        pca = torch.from_numpy(np.load(embed_dir / "item_pca.npy"))
        similar = np.load(embed_dir / "similar_users.npy")
    distiller = Distiller(similar, cfg.seq.distill, data) if _distills(cfg.seq) and similar is not None else None
    evaluator = Evaluator(data, cfg.eval, cfg.train.eval_batch_size, device)
    summary = {}
    for seed in cfg.train.seeds:
        folder = checkpoint_root(run) / f"seed-{seed}"
        _check_checkpoints(folder, key, resume, dist)
        torch.manual_seed(seed)
        model = SeqRecommender(cfg.seq, ds.num_items, llm, pca).to(device)
        trainer = Trainer(model, data, cfg.seq, cfg.train, evaluator, distiller, device, dist, folder)
        state = trainer.fit(seed, resume)
        summary[str(seed)] = {"best_epoch": state.best_epoch, "best_valid_NDCG@10": state.best_score, "epochs": state.epoch}
        if out is not None:
            shutil.copyfile(folder / "best.pt", out / f"model-seed{seed}.pt")
            write_json(out / f"history-seed{seed}.json", state.history)
    if out is not None:
        write_json(out / "model.json", model_spec(cfg.seq, ds.num_items, None if llm is None else llm.shape[1]))
    return {"seeds": summary, "device": str(device), "world_size": dist.world}


def _distills(seq: SeqConfig) -> bool:
    return seq.variant == "llmesr" and seq.distill.alpha > 0


def _check_checkpoints(folder: Path, key: str, resume: bool, dist: DistContext) -> None:
    if not dist.is_main:
        return
    marker = folder / "key.txt"
    if resume and marker.is_file() and marker.read_text() != key:
        raise EsrError(f"{folder}: these checkpoints were made with other settings; run without --resume to start over")
    if not resume and folder.exists():
        shutil.rmtree(folder)
    folder.mkdir(parents=True, exist_ok=True)
    marker.write_text(key)


def model_spec(seq: SeqConfig, num_items: int, llm_dim: int | None) -> dict:
    return {"seq": asdict(seq), "num_items": num_items, "llm_dim": llm_dim}


def load_model(stage_dir: Path, seed: int, device: torch.device | str = "cpu") -> SeqRecommender:
    """Rebuild the recommender of ``seed`` from ``model.json`` and its state_dict."""
    from ..config_schema import build

    spec = read_json(stage_dir / "model.json")
    seq = build(SeqConfig, spec["seq"], "seq.")
    llm = torch.zeros(spec["num_items"] + 1, spec["llm_dim"]) if spec["llm_dim"] else None
    model = SeqRecommender(seq, spec["num_items"], llm, None)
    state = torch.load(stage_dir / f"model-seed{seed}.pt", map_location="cpu", weights_only=True)
    model.load_state_dict(state)
    return model.to(device).eval()


def trained_seeds(stage_dir: Path) -> list[int]:
    return sorted(int(p.stem.removeprefix("model-seed")) for p in stage_dir.glob("model-seed*.pt"))


def histories(stage_dir: Path) -> dict[int, list[dict]]:
    return {seed: json.loads((stage_dir / f"history-seed{seed}.json").read_text()) for seed in trained_seeds(stage_dir)}
