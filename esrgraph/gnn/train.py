"""The pretraining's epochs on the training core (:mod:`esrgraph.training.loop`).

On the whole graph an epoch is one optimiser step: both augmented views
through the encoder and the full contrastive loss over every item (the model
owns the loss: :meth:`~.model.ContrastiveModel.loss`). With mini-batches
(``gnn.minibatch``) an epoch is one step per batch of seed items, every item
a seed once: each step samples the seeds' neighbourhood, forms both views on
it and contrasts the seeds (:meth:`~.model.ContrastiveModel.batch_loss`); the
epoch budget and the patience then count optimiser steps (:func:`step_budget`).
The monitored value is the epoch's mean loss: training stops on a plateau
(``gnn.patience`` epochs without a drop of more than ``gnn.min_delta``), keeps
the weights of the lowest loss and checkpoints every epoch, with the
generator that draws the batches, samples and views, so a resumed run ends
with identical weights.
"""

from __future__ import annotations

import math

import torch

from ..training.checkpoint import CheckpointStore
from ..training.loop import EpochCallback, TrainingLoop, TrainResult
from ..training.optimizers import Optimizers
from ..training.stopping import EarlyStopping
from .blocks import layer_fanouts, make_sampler
from .config import GnnConfig
from .encoder import ITEM
from .model import ContrastiveModel
from .tensors import GraphTensors

LOG_EVERY = 10  # epochs between progress lines in the log (the progress bar shows every epoch on a terminal)


class PretrainTask:
    """The pretraining as the training core sees it: one batch per epoch, the whole graph."""

    metric = None  # monitors the loss

    def __init__(self, model: ContrastiveModel, graph: GraphTensors, cfg: GnnConfig):
        self.model = model
        self.graph = graph
        self.cfg = cfg

    def begin_epoch(self, epoch: int) -> None:
        pass

    def batches(self, epoch: int) -> list[GraphTensors]:
        return [self.graph]

    def loss(self, graph: GraphTensors, network: torch.nn.Module) -> torch.Tensor:
        return network.loss(graph, self.cfg)

    def validate(self) -> dict[str, float]:
        raise NotImplementedError("the pretraining monitors its loss")


class MinibatchPretrainTask(PretrainTask):
    """Mini-batch pretraining as the training core sees it: an epoch's batches are disjoint batches
    of seed items (int64 ``[B]``) that together hold every item once, in an order drawn anew each epoch.

    ``generator`` (on the graph's device) draws the order, the samples and the
    augmented views; the loop checkpoints it.
    """

    def __init__(self, model: ContrastiveModel, graph: GraphTensors, cfg: GnnConfig, generator: torch.Generator):
        super().__init__(model, graph, cfg)
        self.items = graph.num_nodes[ITEM] - 1  # node 0 is padding
        self.sampler = make_sampler(model.encoder.backend, graph, layer_fanouts(cfg.fanouts, cfg.layers))
        self.generator = generator
        # Equal shares rather than a short last batch: each step contrasts about as many seeds.
        self.steps_per_epoch = max(1, math.ceil(self.items / cfg.seed_batch_size))

    def batches(self, epoch: int) -> list[torch.Tensor]:
        order = torch.randperm(self.items, generator=self.generator, device=self.generator.device) + 1
        return list(order.tensor_split(self.steps_per_epoch))

    def loss(self, seeds: torch.Tensor, network: torch.nn.Module) -> torch.Tensor:
        blocks = self.sampler.sample({ITEM: seeds}, self.generator)
        return network.batch_loss(blocks, self.cfg, self.generator)


def step_budget(cfg: GnnConfig, steps_per_epoch: int) -> tuple[int, int]:
    """(most epochs, patience in epochs) for mini-batch epochs of ``steps_per_epoch`` optimiser steps.

    ``gnn.epochs`` and ``gnn.patience`` count optimiser steps, as a whole-graph
    epoch is one step, rounded up to whole epochs: what training learns moves
    with its steps, not with its passes over the items (on amazon-beauty the
    probe of the two modes agreed at equal steps, and mini-batches trained for
    as many epochs took 12 times the steps and learned other neighbours).
    """
    return math.ceil(cfg.epochs / steps_per_epoch), math.ceil(cfg.patience / steps_per_epoch)


def optimiser(model: ContrastiveModel, cfg: GnnConfig, minibatch: bool):
    """Adam; with mini-batches the learned node embeddings (sparse gradients) get torch's SparseAdam.

    A step then updates only the embedding rows of its input nodes, without
    weight decay, instead of every row of tables that grow with the graph
    (at a million items, Adam over the brand table and its dense gradient took about half of a step).
    """
    tables = list(model.encoder.inputs.embeddings.parameters())
    if not minibatch or not tables:
        return torch.optim.Adam(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    sparse = {id(p) for p in tables}
    rest = [p for p in model.parameters() if id(p) not in sparse]
    return Optimizers(
        dense=torch.optim.Adam(rest, lr=cfg.lr, weight_decay=cfg.weight_decay),
        sparse=torch.optim.SparseAdam(tables, lr=cfg.lr),
    )


def pretraining_loop(
    model: ContrastiveModel,
    graph: GraphTensors,
    cfg: GnnConfig,
    store: CheckpointStore | None = None,
    callbacks: tuple[EpochCallback, ...] = (),
    minibatch: bool = False,
    seed: int = 0,
) -> TrainingLoop:
    """The loop over whole-graph steps, or with ``minibatch`` over seed batches drawn from ``seed``."""
    optimizer = optimiser(model, cfg, minibatch)
    generators = {}
    epochs, patience = cfg.epochs, cfg.patience
    if minibatch:
        generator = torch.Generator(device=graph.device).manual_seed(seed)
        task, generators = MinibatchPretrainTask(model, graph, cfg, generator), {"minibatches": generator}
        epochs, patience = step_budget(cfg, task.steps_per_epoch)
    else:
        task = PretrainTask(model, graph, cfg)
    return TrainingLoop(
        task,
        optimizer,
        lambda: EarlyStopping(patience, "min", min_delta=cfg.min_delta),
        epochs,
        store,
        generators=generators,
        label="pretrain-gnn",
        callbacks=callbacks,
        log_every=LOG_EVERY,
    )


def train(
    model: ContrastiveModel,
    graph: GraphTensors,
    cfg: GnnConfig,
    store: CheckpointStore | None = None,
    resume: bool | str = False,
    callbacks: tuple[EpochCallback, ...] = (),
    minibatch: bool = False,
    seed: int = 0,
) -> TrainResult:
    """Pretrain ``model`` on ``graph`` and leave the best weights in it; ``resume`` as in
    :func:`~esrgraph.training.loop.resumes`."""
    loop = pretraining_loop(model, graph, cfg, store, callbacks, minibatch, seed)
    result = loop.fit(resume)
    model.load_state_dict(loop.best_state(result))
    return result
