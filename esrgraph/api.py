"""The Python API: training a recommender exactly as ``esr train-seq`` does, and loading a trained one
to recommend with (:func:`load_recommender`).

The command line, the benchmarks and the tests all train through
:func:`train_recommender`, so what they measure is what the toolkit trains::

    from esrgraph.api import train_recommender
    from esrgraph.config import load_config

    cfg = load_config("configs/quick.yaml")
    trained = train_recommender(cfg, seed=1)  # brings the stages it reads up to date first
    trained.model, trained.summary, trained.history
"""

from __future__ import annotations

from pathlib import Path

from .artifacts import stage_damage
from .config import Config, load_config
from .errors import EsrError
from .pipeline import current, damage, ensure
from .recommend.recommender import Recommender, load_model_and_dataset
from .runs import Run
from .seq.build import RecommenderInputs
from .seq.build import build_recommender as _build_recommender
from .seq.model import SeqRecommender
from .seq.train import TrainedRecommender
from .seq.train import train_recommender as _train_recommender
from .stages import seq as seq_stage
from .training import threads
from .training.checkpoint import CheckpointStore
from .training.device import resolve_device
from .training.loop import EpochCallback


def recommender_inputs(run: Run) -> RecommenderInputs:
    """The arrays the configured recommender is built from, bringing the stages it reads up to date first."""
    folders = {name: ensure(run, name) for name in seq_stage.reads(run.cfg)}
    return RecommenderInputs.from_folders(run.cfg, folders)


def build_recommender(
    cfg: Config, run: Run | None = None, seed: int | None = None, inputs: RecommenderInputs | None = None
) -> SeqRecommender:
    """The configured recommender, untrained, on ``cfg.train.device``, initialised from ``seed`` (the first of
    ``train.seeds`` by default)."""
    inputs = inputs or recommender_inputs(run or Run(cfg))
    seed = cfg.train.seeds[0] if seed is None else seed
    return _build_recommender(cfg, inputs, seed, resolve_device(cfg.train.device))


def train_recommender(
    cfg: Config,
    run: Run | None = None,
    seed: int | None = None,
    inputs: RecommenderInputs | None = None,
    store: CheckpointStore | None = None,
    resume: bool = False,
    callbacks: tuple[EpochCallback, ...] = (),
) -> TrainedRecommender:
    """Train the configured recommender for ``seed`` (the first of ``train.seeds`` by default) and finish
    it as ``esr train-seq`` does: readouts fitted, cold items mapped. Checkpoints go to ``store`` (none
    by default: the best weights stay in memory); each callback runs after each epoch."""
    threads.configure_once()  # the command line's thread rule (a shared CPU) unless the caller set a count
    run = run or Run(cfg)
    inputs = inputs or recommender_inputs(run)
    seed = cfg.train.seeds[0] if seed is None else seed
    shared = seq_stage.shared_for_seed(seq_stage.declared_shared_model(run), seed)
    device = resolve_device(cfg.train.device)
    return _train_recommender(cfg, inputs, seed, device, store, resume, shared=shared, callbacks=callbacks)


def load_recommender(
    source: str | Path | Config,
    seed: int | None = None,
    device: str = "cpu",
    overrides: list[str] | tuple[str, ...] = (),
    approximate: bool = False,
) -> Recommender:
    """A :class:`~esrgraph.recommend.recommender.Recommender` over a trained model.

    ``source``: a run directory (as ``esr`` wrote it: its ``config.yaml``, ``dataset/`` and ``seq/``;
    nothing else is read, the raw data need not be there), a YAML config or a loaded config (the model
    trained with exactly that config, which must be up to date). ``seed``: which trained model (the
    smallest trained seed by default). ``approximate``: top-k through an approximate index (needs
    faiss-cpu; for catalogues of millions of items). Loading imports no DGL.
    """
    if isinstance(source, Config):
        cfg = source
    else:
        path = Path(source)
        if path.is_dir():
            return _from_run_dir(path, seed, device, approximate)
        cfg = load_config(path, overrides)
    run = Run(cfg)
    seq_dir = current(run, "seq")
    if seq_dir is None:
        if found := damage(run, "seq"):
            raise EsrError(f"{found}: the trained model or what it was trained on is damaged; {REBUILD}")
        raise EsrError(
            f"no model trained with this config in {run.dir} (or its inputs changed since); "
            "run esr train-seq with it first"
        )
    model, dataset, _ = load_model_and_dataset(seq_dir, run.stage_dir("dataset"), seed, device)
    return Recommender(model, dataset, cfg.seq.max_length, approximate=approximate)


REBUILD = "run esr train-seq with this config, which rebuilds what is damaged"


def _from_run_dir(folder: Path, seed: int | None, device: str, approximate: bool) -> Recommender:
    if not (folder / "config.yaml").is_file():
        raise EsrError(f"{folder}: not a run directory (no config.yaml); give a run directory or a config file")
    for stage in ("dataset", "seq"):  # a copied run directory is checked against its manifests too
        if found := stage_damage(folder / stage):
            raise EsrError(f"{found}: the {stage} stage of this run directory is damaged; {REBUILD}")
    cfg = load_config(folder / "config.yaml")
    model, dataset, _ = load_model_and_dataset(folder / "seq", folder / "dataset", seed, device)
    return Recommender(model, dataset, cfg.seq.max_length, approximate=approximate)
