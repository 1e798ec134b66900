"""Building a recommender and its trainer from a config and the arrays the earlier stages wrote.

:class:`RecommenderInputs` gathers what a recommender is made from (the
dataset, the LLM and PCA item embeddings, the graph item embeddings, the
similar users); :func:`build_recommender` and :func:`build_trainer` are what
:func:`~.train.train_recommender` calls, and it is what the ``seq`` stage, the
API and the benchmarks call, so none of them can drift from what
``esr train-seq`` trains.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import torch

from ..data.dataset import Dataset
from ..data.sequences import SequenceData
from ..data.store import load_dataset
from ..eval.baselines import PopularityScorer
from ..eval.evaluate import Evaluator, sample_users
from ..eval.metrics import VALID_METRIC
from ..gnn.store import load_item_graph
from ..text.reduce import pca
from ..text.store import ITEM_LLM, ITEM_PCA, SIMILAR_USERS, load_array
from ..training.checkpoint import CheckpointStore
from ..training.distributed import DistContext
from .backbones import left_padded
from .distill import SelfDistillation
from .model import SeqRecommender
from .objectives import build_objective
from .size_rule import resolve, valid_users
from .trainer import Trainer
from .variants import distills, variant_spec
from .views import ID_INIT_STD


@dataclass
class RecommenderInputs:
    """Arrays a recommender is built from; ``None`` where the config does not use them."""

    dataset: Dataset
    llm: np.ndarray | None = None  # [N + 1, d_llm]
    # [N + 1, d], or the embed folder it is read from each time a model is built: it only
    # initialises the collaborative view, and kept it was a GiB of the training peak at 1M items
    pca: np.ndarray | Path | None = None
    graph: np.ndarray | None = None  # [N + 1, d_g]
    similar_users: np.ndarray | None = None  # [U, K]

    @classmethod
    def from_folders(cls, cfg, folders: dict[str, Path]) -> RecommenderInputs:
        """Read the stage folders a ``seq`` stage reads (``dataset``, and ``embed``/``gnn`` where used)."""
        inputs = cls(load_dataset(folders["dataset"]))
        if "embed" in folders:
            inputs.llm = load_array(folders["embed"], ITEM_LLM)
            inputs.pca = Path(folders["embed"])
            inputs.similar_users = load_array(folders["embed"], SIMILAR_USERS)
        if "gnn" in folders:
            inputs.graph = load_item_graph(folders["gnn"])
        return inputs

    def sequences(self, cfg) -> SequenceData:
        return SequenceData(self.dataset, cfg.seq.max_length, left_padded(cfg.seq))


def _read_arrays(cfg, inputs: RecommenderInputs) -> dict[str, np.ndarray | None]:
    """The input arrays the configured model reads (None for those it does not), the id table's start aside."""
    return {
        "llm": inputs.llm if variant_spec(cfg.seq).semantic else None,
        "graph": inputs.graph if cfg.seq.fusion != "none" else None,
        "tail_users": inputs.dataset.tail_users,
    }


def model_shapes(cfg, inputs: RecommenderInputs) -> dict[str, list[int] | None]:
    """The shapes of :func:`model_tensors` but the id table's start (the weights restore it): no tensor
    is built and no file read."""
    return {name: list(a.shape) if a is not None else None for name, a in _read_arrays(cfg, inputs).items()}


def model_tensors(cfg, inputs: RecommenderInputs) -> dict[str, torch.Tensor | None]:
    """Tensors the model is built from: LLM table, collaborative init, graph table, user groups."""
    as_tensor = lambda a: torch.from_numpy(np.asarray(a, dtype=np.float32)) if a is not None else None
    arrays = _read_arrays(cfg, inputs)
    llm, graph = as_tensor(arrays["llm"]), as_tensor(arrays["graph"])
    init = None
    if variant_spec(cfg.seq).text:
        pca = load_array(inputs.pca, ITEM_PCA) if isinstance(inputs.pca, Path) else inputs.pca
        init = as_tensor(pca)
    if graph is not None:
        if cfg.seq.fusion == "init" and init is not None:
            init = fused_init(init, graph, cfg.seq.hidden_size)
        # Graph rows leave a LayerNorm, far larger than the item embeddings they join: bring
        # them to the collaborative view's starting scale, so a nearly closed gate (or a new
        # view) starts nearly silent and the model must learn to let the graph in.
        graph = graph * (_start_std(init) / graph[1:].std())
    return {"llm": llm, "init": init, "graph": graph, "tail_users": torch.from_numpy(arrays["tail_users"].copy())}


def build_recommender(cfg, inputs: RecommenderInputs, seed: int, device: torch.device | str = "cpu") -> SeqRecommender:
    """The configured recommender, its weights initialised from ``seed``."""
    torch.manual_seed(seed)
    model = SeqRecommender(
        cfg.seq, inputs.dataset.num_items, **model_tensors(cfg, inputs), num_warm=inputs.dataset.num_warm
    )
    return model.to(device)


def build_evaluator(cfg, data: SequenceData, device: torch.device | str = "cpu") -> Evaluator:
    """The configured evaluator: validation ranks ``train.valid_users`` users at most and the test split
    ``eval.users`` (fixed samples)."""
    tested = sample_users(data.num_users, cfg.eval.users, "test")
    valid = validation_users(cfg, data)
    return Evaluator(data, cfg.eval, cfg.train.eval_batch_size, torch.device(device), valid, tested)


def validation_users(cfg, data: SequenceData) -> np.ndarray | None:
    """A fixed random sample of ``train.valid_users`` users (``auto``: by size) when there are more, else
    None (every user)."""
    return sample_users(data.num_users, valid_users(cfg.train.valid_users, data.num_warm), "valid")


def popularity_floor(cfg, data: SequenceData, evaluator: Evaluator) -> float:
    """The popularity baseline's validation NDCG@10 under the early-stopping protocol."""
    scorer = PopularityScorer(data.train_popularity().numpy(), evaluator.device)
    metrics = evaluator.evaluate(scorer, "valid", [cfg.train.valid_protocol])
    return metrics[cfg.train.valid_protocol]["overall"][VALID_METRIC]


def prepare_training(cfg, inputs: RecommenderInputs, model: SeqRecommender, data: SequenceData) -> None:
    """Give ``model`` what it trains with: the sequences, the configured objective and self-distillation."""
    popularity = data.train_popularity()[: data.num_warm + 1]
    auxiliary = []
    if distills(cfg.seq) and inputs.similar_users is not None:
        auxiliary.append(SelfDistillation(inputs.similar_users, cfg.seq.distill, data, cfg.seq.distill.alpha))
    objective = build_objective(cfg.train, data.num_warm, popularity, variant_spec(cfg.seq).semantic)
    model.prepare_training(data, objective, tuple(auxiliary))


def build_trainer(
    cfg,
    inputs: RecommenderInputs,
    model: SeqRecommender,
    store: CheckpointStore | None,
    device: torch.device | str = "cpu",
    dist: DistContext | None = None,
    data: SequenceData | None = None,
    evaluator: Evaluator | None = None,
) -> Trainer:
    """A trainer for ``model`` with the configured objective, distillation and early stopping.

    The size rule settles train.*'s ``auto`` values once, here: the objective, the evaluator built
    here and the trainer read the same concrete settings."""
    device = torch.device(device)
    data = data or inputs.sequences(cfg)
    settled = resolve(cfg.train, data.num_warm, variant_spec(cfg.seq).semantic, device, data.mean_training_targets())
    cfg = replace(cfg, train=settled)
    evaluator = evaluator or build_evaluator(cfg, data, device)
    prepare_training(cfg, inputs, model, data)
    floor = popularity_floor(cfg, data, evaluator)
    return Trainer(model, data, cfg.train, evaluator, device, store, dist, floor)


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
