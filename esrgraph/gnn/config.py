"""Settings of the graph pretraining stage (`gnn:` in YAML)."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal

from ..config_schema import field
from ..errors import ConfigError
from ..training.device import check_device

BACKENDS = ("auto", "dgl", "native")
COMBINES = ("sum", "mean", "attention")
NEGATIVES = ("exact", "in-batch")
ITEM_INPUTS = ("llm", "id")
ATTRIBUTE_INPUTS = ("learned", "text")


@dataclass
class ViewConfig:
    """Augmentation of the first contrastive view."""

    edge_drop: float = field(0.2, min=0.0, lt=1.0, help="probability of dropping each edge")
    feature_mask: float = field(0.3, min=0.0, lt=1.0, help="probability of zeroing each input feature column")


@dataclass
class SecondViewConfig(ViewConfig):
    """Augmentation of the second view: stronger than the first, as in two-view graph contrast."""

    edge_drop: float = field(0.4, min=0.0, lt=1.0, help="probability of dropping each edge")
    feature_mask: float = field(0.4, min=0.0, lt=1.0, help="probability of zeroing each input feature column")


@dataclass
class GnnConfig:
    # encoder
    layers: int = field(2, min=1, help="relation-aware GAT layers")
    hidden: int = field(64, min=1, help="size of every node representation and of the output item embeddings")
    heads: int = field(4, min=1, help="attention heads per relation; must divide hidden")
    feat_drop: float = field(0.0, min=0.0, lt=1.0, help="dropout on each layer's input features (training only)")
    attn_drop: float = field(0.0, min=0.0, lt=1.0, help="dropout on attention weights (training only)")
    negative_slope: float = field(0.2, min=0.0, help="LeakyReLU slope of the attention scores")
    # mean by the probe (category@10 / brand@10 of the trained encoder): amazon-beauty 0.529/0.483 with
    # mean, 0.530/0.428 with sum; amazon-scientific (seed 42) 0.439/0.540 mean, 0.465/0.527 sum,
    # 0.431/0.488 attention. Equal on category overall, and mean keeps far more brand structure.
    combine: Literal["sum", "mean", "attention"] = field(
        "mean", help="how a node type merges the outputs of its relations"
    )
    item_input: Literal["llm", "id"] = field(
        "llm",
        help="llm: linear projection of the `esr embed` item embeddings; id: learned id embeddings",
    )
    attribute_input: Literal["learned", "text"] = field(
        "learned",
        help="learned: an embedding per attribute node; text: the sentence model's "
        "encoding of the attribute's own value (embed.model)",
    )
    # contrastive objective
    view1: ViewConfig = field(factory=ViewConfig)
    view2: SecondViewConfig = field(factory=SecondViewConfig)
    projection: int = field(64, min=1, help="hidden size of the projection head")
    tau: float = field(0.5, gt=0.0, help="temperature of the InfoNCE loss")
    # in-batch by the probe: on amazon-scientific (LLM inputs, defaults, 150 epochs, seeds 42 and 1)
    # the trained encoder's category@10 / brand@10 were 0.413/0.568 and 0.421/0.554 with in-batch
    # negatives, 0.419/0.556 and 0.414/0.570 with exact ones: equal within seed noise, while an
    # exact epoch costs O(items^2): 2.6x an in-batch one there, 13x on amazon-beauty (4.3 s vs 0.32 s).
    negatives: Literal["exact", "in-batch"] = field(
        "in-batch",
        help="exact: every other item in both views; in-batch: the other items of a shuffled batch",
    )
    batch_size: int = field(1024, min=2, help="items per loss batch (in-batch: the negatives; exact: the memory bound)")
    link_weight: float = field(0.0, min=0.0, help="weight of the item-attribute link prediction term (0: off)")
    link_samples: int = field(4096, min=1, help="positive item-attribute edges sampled per relation and step")
    # optimisation
    lr: float = field(1e-3, gt=0.0, help="Adam learning rate")
    weight_decay: float = field(1e-5, min=0.0, help="Adam weight decay")
    epochs: int = field(
        200,
        min=1,
        help="most epochs (one epoch: one step on the whole graph); with mini-batches an epoch is one step per "
        "seed batch, every item a seed once, and this counts steps (rounded up to whole epochs)",
    )
    patience: int = field(
        20,
        min=1,
        help="stop after this many epochs without a loss improvement of min_delta; with mini-batches, "
        "counted in steps like epochs",
    )
    min_delta: float = field(1e-3, min=0.0, help="smallest loss decrease that counts as an improvement")
    # mini-batches: a step encodes only the sampled neighbourhood of a batch of seed items
    minibatch: bool | Literal["auto"] = field(
        "auto",
        help="true: every step encodes the sampled neighbourhood of a batch of seed items, so memory is "
        "bounded by the batch; false: every step (one an epoch) encodes the whole graph; auto: true when the "
        "graph has more than minibatch_above items",
    )
    # About 2.3 GiB per 100k items for a full-graph step on a CPU (benchmarks/README.md): past 200k
    # items a full-graph step no longer fits comfortably beside the other stages in 16 GB.
    minibatch_above: int = field(
        200_000,
        min=0,
        help="auto: mini-batches above this many items (a whole-graph step takes about 2.3 GiB per 100k items "
        "on a CPU)",
    )
    fanouts: list[int] | None = field(
        factory=lambda: [10],
        help="mini-batches: in-neighbours sampled per node and relation in each layer, input layer first; "
        "one entry for every layer; -1 (or null for every layer): all neighbours",
    )
    seed_batch_size: int = field(
        1024,
        min=2,
        help="mini-batches: seed items per step; the loss contrasts them with each other (in groups of batch_size)",
    )
    # execution
    backend: Literal["auto", "dgl", "native"] = field(
        "auto",
        help="message passing: dgl, native (plain PyTorch, any device) or auto (dgl where it supports the device)",
    )
    device: str = field("auto", help="auto (cuda when available), cpu, cuda or cuda:N")
    probe_k: int = field(10, min=1, help="neighbours per item in the quality probe")

    def __post_init__(self) -> None:
        if not re.fullmatch(r"auto|cpu|cuda(:\d+)?", self.device):
            raise ConfigError(f"gnn.device: {self.device!r} is not allowed; use auto, cpu, cuda or cuda:N")
        if self.hidden % self.heads:
            raise ConfigError(f"gnn.heads: {self.heads} does not divide gnn.hidden ({self.hidden})")
        for i, fanout in enumerate(self.fanouts or []):
            if fanout == 0 or fanout < -1:
                raise ConfigError(f"gnn.fanouts[{i}]: {fanout} is not allowed; use a number of neighbours or -1 (all)")
        if self.fanouts and len(self.fanouts) not in (1, self.layers):
            raise ConfigError(
                f"gnn.fanouts: {len(self.fanouts)} entries for {self.layers} layers (gnn.layers); "
                "give one per layer, or one for every layer"
            )
        if self.minibatch is True:
            self.check_minibatch()

    def uses_minibatch(self, num_items: int) -> bool:
        """Whether a graph of ``num_items`` items trains by mini-batches (``minibatch``'s size rule)."""
        on = num_items > self.minibatch_above if self.minibatch == "auto" else bool(self.minibatch)
        if on:
            self.check_minibatch()
        return on

    def check_minibatch(self) -> None:
        if self.link_weight > 0:
            raise ConfigError(
                f"gnn.link_weight: {self.link_weight} needs whole-graph steps; set it to 0 or gnn.minibatch to false"
            )

    def check(self, cfg) -> None:
        check_device(self.device, "gnn.device")
