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
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import numpy as np
import torch

from ..artifacts import read_json, read_manifest, write_json
from ..config import Config
from ..config_schema import build
from ..data import stage as data_stage
from ..data.dataset import Dataset
from ..errors import EsrError
from ..eval.evaluate import Evaluator
from ..runs import Run
from ..text import stage as text_stage
from ..text.reduce import pca
from .batches import SequenceData
from .config import HeadsConfig, SeqConfig
from .distill import Distiller
from .distributed import DistContext, resolve_device
from .fit_heads import fit_heads
from .model import SeqRecommender
from .theta import tune_theta
from .trainer import Trainer, save_state
from .views import ID_INIT_STD

log = logging.getLogger(__name__)
STAGE = "seq"


def stage_section(cfg: Config) -> dict:
    """The settings the trained models depend on."""
    section = {"seq": cfg.seq, "train": cfg.train}
    if cfg.train.valid_protocol == "sampled":
        section["eval"] = {"sampled_negatives": cfg.eval.sampled_negatives, "negative_seed": cfg.eval.negative_seed}
    return section


def train_seq(run: Run, resume: bool | str = False) -> Path:
    """Train (or find up to date) the configured recommender for every seed; returns the stage folder.

    ``resume``: True continues interrupted training (checkpoints of other
    settings are an error); "auto" continues when the checkpoints match and
    starts over otherwise.
    """
    cfg = run.cfg
    device = resolve_device(cfg.train.device)
    dist = DistContext.from_env(device)
    if dist.active:
        device = resolve_device(cfg.train.device, dist.local_rank)
    if not dist.is_main:
        dist.barrier()  # rank 0 prepares the upstream stages first
    inputs, upstream = _upstream(run)
    if dist.is_main:
        dist.barrier()
    key = run.key(STAGE, stage_section(cfg), upstream)  # the key run_stage computes, needed before it
    will_train = dist.broadcast(float(not run.is_current(STAGE, key))) > 0

    def produce(out: Path | None) -> dict:
        donor = _trained_shared_model(run, upstream) if dist.world == 1 else None
        return _train_all(run, inputs, device, dist, key, resume, out, donor)

    if dist.is_main:
        out = run.run_stage(STAGE, stage_section(cfg), upstream, produce)
        shutil.rmtree(checkpoint_root(run), ignore_errors=True)  # the stage holds the best models now
    else:
        if will_train:
            produce(None)
        out = run.stage_dir(STAGE)
    dist.barrier()
    return out


def is_trained(run: Run) -> bool:
    """The stage folder holds models of exactly this config. Where it holds models at all,
    the upstream stages are brought up to date first, as training would."""
    if read_manifest(run.stage_dir(STAGE)) is None:
        return False
    _, upstream = _upstream(run)
    return run.is_current(STAGE, run.key(STAGE, stage_section(run.cfg), upstream))


def checkpoint_root(run: Run) -> Path:
    folder = run.stage_dir(STAGE)
    return folder.with_name(folder.name + ".checkpoints")


@dataclass
class Inputs:
    """What the recommender reads from the stages before it."""

    ds: Dataset
    embed_dir: Path | None = None
    graph_dir: Path | None = None


def _upstream(run: Run) -> tuple[Inputs, dict[str, str]]:
    inputs = Inputs(data_stage.prepare(run))
    upstream = {data_stage.STAGE: run.stage_key(data_stage.STAGE)}
    if run.cfg.seq.variant != "plain":
        inputs.embed_dir = text_stage.embed(run)
        upstream[text_stage.STAGE] = run.stage_key(text_stage.STAGE)
    if run.cfg.seq.fusion != "none":
        from ..gnn import stage as gnn_stage

        inputs.graph_dir = gnn_stage.pretrain(run, resume=True)
        upstream[gnn_stage.STAGE] = run.stage_key(gnn_stage.STAGE)
    return inputs, upstream


def model_inputs(cfg: Config, inputs: Inputs) -> dict[str, torch.Tensor | None]:
    """Tensors the model is built from: LLM table, collaborative init, graph table, user groups."""
    llm = init = graph = None
    if inputs.embed_dir is not None:
        llm = torch.from_numpy(np.load(inputs.embed_dir / "item_llm.npy"))
        init = torch.from_numpy(np.load(inputs.embed_dir / "item_pca.npy"))
    if inputs.graph_dir is not None:
        graph = torch.from_numpy(np.load(inputs.graph_dir / "item_graph.npy"))
        if cfg.seq.fusion == "init" and init is not None:
            init = fused_init(init, graph, cfg.seq.hidden_size)
        # Graph rows leave a LayerNorm, far larger than the item embeddings they join: bring
        # them to the collaborative view's starting scale, so a nearly closed gate (or a new
        # view) starts nearly silent and the model must learn to let the graph in.
        graph = graph * (_start_std(init) / graph[1:].std())
    return {"llm": llm, "init": init, "graph": graph, "tail_users": head_tail_groups(cfg, inputs.ds)}


def _start_std(init: torch.Tensor | None) -> float:
    """The standard deviation the collaborative view starts at (PCA rows, or the random init)."""
    return float(init[1:].std()) if init is not None else ID_INIT_STD


def fused_init(pca_rows: torch.Tensor, graph: torch.Tensor, d: int) -> torch.Tensor:
    """The seed project's fusion: PCA and graph embeddings concatenated and reduced to d dimensions.

    Each block is scaled to unit standard deviation first, so the graph (whose
    rows come out of a LayerNorm, far larger than the PCA rows) cannot drown the
    text; the result is scaled back to the PCA rows' standard deviation, so the
    collaborative view starts at the scale plain LLM-ESR starts at. Row 0 stays zero.
    """
    text, structure = pca_rows[1:].numpy(), graph[1:].numpy()
    both = np.concatenate([text / text.std(), structure / structure.std()], axis=1)
    fused = pca(both, d)
    fused *= text.std() / fused.std()
    return torch.cat([torch.zeros(1, d), torch.from_numpy(fused)])


def head_tail_groups(cfg: Config, ds: Dataset) -> torch.Tensor:
    """[U] True for the tail users of the head/tail heads: the dataset's tail users, or a fixed threshold."""
    threshold = cfg.seq.heads.tail_max_length
    if threshold is None:
        return torch.from_numpy(ds.tail_users.copy())
    return torch.from_numpy((ds.lengths() - 2) <= threshold)


def _trained_shared_model(run: Run, upstream: dict[str, str]) -> Path | None:
    """A finished stage of this run directory holding the shared model that training would make here, or None.

    Heads fitted after training leave the shared model's training as it is
    without heads, draw for draw, unless head users skip self-distillation;
    a stage trained with the same settings and no heads holds that model.
    """
    cfg = run.cfg
    heads = cfg.seq.heads
    if not (heads.enabled and heads.fit == "after") or (_distills(cfg.seq) and not heads.distill_head_users):
        return None
    bare = replace(cfg, seq=replace(cfg.seq, heads=HeadsConfig()))
    wanted = run.key(STAGE, stage_section(bare), upstream)
    own = run.stage_dir(STAGE)
    for folder in sorted(run.dir.glob(f"{STAGE}*")):
        manifest = read_manifest(folder) if folder != own and folder.is_dir() else None
        if manifest and manifest.get("key") == wanted:
            return folder
    return None


def _take_shared_model(model: SeqRecommender, donor: Path, seed: int, folder: Path, resume: bool) -> dict | None:
    """Start from the donor's best model of ``seed`` instead of training; returns its training summary."""
    summary = (read_manifest(donor) or {}).get("seeds", {}).get(str(seed))
    source = donor / f"model-seed{seed}.pt"
    if summary is None or not source.is_file():
        return None
    if resume and (folder / "best.pt").is_file():  # taken before the interruption, its heads perhaps fitted
        return {**summary, "shared_model_from": donor.name}
    missing, unexpected = model.load_state_dict(torch.load(source, map_location="cpu", weights_only=True), strict=False)
    if unexpected or any(not name.startswith("heads.") for name in missing):
        return None
    save_state(folder / "best.pt", model.state_dict())
    log.info("seq: seed %d's shared model was trained with these settings in %s; only the heads are fitted", seed, donor)
    return {**summary, "shared_model_from": donor.name}


def _train_all(run: Run, inputs: Inputs, device: torch.device, dist: DistContext,
               key: str, resume: bool | str, out: Path | None, donor: Path | None = None) -> dict:
    cfg, ds = run.cfg, inputs.ds
    data = SequenceData(ds, cfg.seq.max_length, cfg.seq.reference_padding)
    tensors = model_inputs(cfg, inputs)
    distiller = None
    if _distills(cfg.seq) and inputs.embed_dir is not None:
        distiller = Distiller(np.load(inputs.embed_dir / "similar_users.npy"), cfg.seq.distill, data)
    evaluator = Evaluator(data, cfg.eval, cfg.train.eval_batch_size, device)
    summary = {}
    for seed in cfg.train.seeds:
        folder = checkpoint_root(run) / f"seed-{seed}"
        resume_seed = _check_checkpoints(folder, key, resume, dist)
        torch.manual_seed(seed)
        model = SeqRecommender(cfg.seq, ds.num_items, **tensors).to(device)
        taken = _take_shared_model(model, donor, seed, folder, resume_seed) if donor is not None else None
        if taken is not None:
            summary[str(seed)], history = taken, json.loads((donor / f"history-seed{seed}.json").read_text())
        else:
            trainer = Trainer(model, data, cfg.seq, cfg.train, evaluator, distiller, device, dist, folder)
            state = trainer.fit(seed, resume_seed)
            summary[str(seed)] = {"best_epoch": state.best_epoch, "best_valid_NDCG@10": state.best_score,
                                  "epochs": state.epoch}
            history = state.history
        if cfg.seq.heads.enabled and (cfg.seq.heads.fit == "after" or cfg.seq.heads.tune_theta) and dist.is_main:
            summary[str(seed)]["heads"] = _finish_heads(model, folder / "best.pt", data, evaluator, cfg, device, seed)
        if out is not None:
            shutil.copyfile(folder / "best.pt", out / f"model-seed{seed}.pt")
            write_json(out / f"history-seed{seed}.json", history)
    if out is not None:
        write_json(out / "model.json", model_spec(cfg.seq, ds.num_items, tensors))
    return {"seeds": summary, "device": str(device), "world_size": dist.world}


def _finish_heads(model: SeqRecommender, path: Path, data: SequenceData, evaluator: Evaluator, cfg: Config,
                  device: torch.device, seed: int) -> dict:
    """Fit the heads of the best model (``fit: after``) and choose θ on validation (``tune_theta``); saved with it."""
    heads, record = cfg.seq.heads, path.parent / "heads.json"
    if record.is_file():  # a resumed run finished this seed's heads before the interruption
        return read_json(record)
    model.load_state_dict(torch.load(path, map_location=device, weights_only=True))
    out = {}
    if heads.fit == "after":
        out["fit_loss"] = fit_heads(model, data, heads, cfg.train.negatives, device, seed)
    if heads.tune_theta:
        out.update(tune_theta(model, evaluator, cfg.train.valid_protocol, heads.tune_on))
    save_state(path, model.state_dict())
    write_json(record, out)  # after the weights: a record means the saved model holds these heads
    return out


def _distills(seq: SeqConfig) -> bool:
    return seq.variant == "llmesr" and seq.distill.alpha > 0


def _check_checkpoints(folder: Path, key: str, resume: bool | str, dist: DistContext) -> bool:
    """Prepare the checkpoint folder (rank 0); returns, on every rank, whether training continues from it."""
    continues = False
    if dist.is_main:
        marker = folder / "key.txt"
        matches = marker.is_file() and marker.read_text() == key
        if resume is True and marker.is_file() and not matches:
            raise EsrError(f"{folder}: these checkpoints were made with other settings; run without --resume to start over")
        continues = bool(resume) and matches
        if continues:
            log.info("seq: continuing from the checkpoints in %s", folder)
        elif folder.exists():
            shutil.rmtree(folder)
        folder.mkdir(parents=True, exist_ok=True)
        marker.write_text(key)
    return dist.broadcast(float(continues)) > 0


def model_spec(seq: SeqConfig, num_items: int, tensors: dict[str, torch.Tensor | None]) -> dict:
    """The shapes the model was built with; its tables are restored from the state_dict."""
    shapes = {name: list(t.shape) if t is not None else None for name, t in tensors.items() if name != "init"}
    return {"seq": asdict(seq), "num_items": num_items, "shapes": shapes}


def load_model(stage_dir: Path, seed: int, device: torch.device | str = "cpu") -> SeqRecommender:
    """Rebuild the recommender of ``seed`` from ``model.json`` and its state_dict."""
    spec = read_json(stage_dir / "model.json")
    seq = build(SeqConfig, spec["seq"], "seq.")
    empty = {name: torch.zeros(shape) if shape else None for name, shape in spec["shapes"].items()}
    model = SeqRecommender(seq, spec["num_items"], **empty)
    state = torch.load(stage_dir / f"model-seed{seed}.pt", map_location="cpu", weights_only=True)
    model.load_state_dict(state)
    return model.to(device).eval()


def trained_seeds(stage_dir: Path) -> list[int]:
    return sorted(int(p.stem.removeprefix("model-seed")) for p in stage_dir.glob("model-seed*.pt"))


def histories(stage_dir: Path) -> dict[int, list[dict]]:
    return {seed: json.loads((stage_dir / f"history-seed{seed}.json").read_text()) for seed in trained_seeds(stage_dir)}
