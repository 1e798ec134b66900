"""Settings of the sequential recommender (`seq:`) and its training (`train:`)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

from ..config_schema import field

BACKBONES = ("sasrec", "gru4rec", "bert4rec")
# plain: the backbone with id embeddings only; dual-view: LLM-ESR without
# self-distillation; llmesr: the full model.
VARIANTS = ("plain", "dual-view", "llmesr")


@dataclass
class DistillConfig:
    """Retrieval-augmented self-distillation: similar users' encodings teach each user."""

    alpha: float = field(0.1, min=0.0, help="weight of the distillation loss")
    k: Optional[int] = field(None, min=1, help="similar users per teacher; default all of embed.similar_users")
    loss: str = field("mse", choices=("mse", "contrastive"), help="mse to the teacher, or in-batch contrastive alignment")
    temperature: float = field(0.1, gt=0.0, help="contrastive alignment temperature")
    # epoch: on amazon-scientific (3 seeds) test NDCG@10 matched per-batch teachers
    # (0.0223 vs 0.0222 full, 0.2108 vs 0.2104 sampled) with epochs 1.8x faster.
    teacher: str = field("epoch", choices=("batch", "epoch"),
                         help="encode every user once per epoch, or the similar users for every batch (as the reference)")


FUSIONS = ("none", "init", "gate", "view")


@dataclass
class HeadsConfig:
    """Separate prediction heads for head and tail users, mixed with the shared score."""

    enabled: bool = field(False, help="score each user with the shared head and the head of its group")
    tail_max_length: Optional[int] = field(
        None, min=1, help="tail if the training sequence has at most this many items; default: the dataset's tail users")
    theta_tail: float = field(0.5, min=0.0, max=1.0, help="weight of the group head for tail users")
    theta_head: float = field(0.5, min=0.0, max=1.0, help="weight of the group head for head users")
    learn_theta: bool = field(False, help="learn both weights (a third loss on the mixed score), starting from the values above")
    distill_head_users: bool = field(False, help="false: head users skip self-distillation")
    tune_theta: bool = field(
        False, keyed_if_set=True,
        help="after training, set each group's θ to the one of 0, 0.1, …, 1 with the best validation NDCG@10 on its users")
    shared_gradient: bool = field(
        True, keyed_if_set=True, help="false: the group heads' losses train the heads alone, a readout over the shared model's vectors")
    fit: str = field(
        "joint", choices=("joint", "after"), keyed_if_set=True,
        help="joint: the heads train with the shared model; after: the shared model trains alone (as without heads), "
        "then each head is fitted on its group's training positions, the shared model frozen")
    fit_loss: str = field("ce", choices=("ce", "bce"), keyed_if_set=True,
                          help="fit after: full softmax over every item, or bce with train.negatives sampled negatives")
    fit_epochs: int = field(20, min=1, keyed_if_set=True, help="fit after: passes over each group's training positions")
    fit_lr: float = field(1e-3, gt=0.0, keyed_if_set=True, help="fit after: Adam learning rate")
    fit_batch_size: int = field(
        1024, min=1, keyed_if_set=True,
        help="fit after: positions per step (ce holds a positions × items score matrix: lower it for large catalogues)")
    tune_on: str = field(
        "valid_protocol", choices=("valid_protocol", "both_protocols"), keyed_if_set=True,
        help="tune_theta's criterion: the early-stopping protocol's NDCG@10, or the smaller relative gain over θ = 0 "
        "of the sampled and the full protocol (a head is used only where it helps under both)")


@dataclass
class SeqConfig:
    backbone: str = field("sasrec", choices=BACKBONES)
    variant: str = field("llmesr", choices=VARIANTS)
    hidden_size: int = field(64, min=1)
    num_layers: int = field(2, min=1)
    num_heads: int = field(1, min=1)
    max_length: int = field(200, min=2, help="sequences keep their most recent items up to this length")
    dropout: float = field(0.5, min=0.0, lt=1.0)
    causal: bool = field(True, help="SASRec causal mask; false reproduces the reference, which had none")
    reference_padding: bool = field(
        False, help="reproduce the reference: left-pad every sequence to max_length and attend to padding")
    cross_attention: bool = field(False, help="cross-attention between the semantic and collaborative views")
    mask_prob: float = field(0.2, gt=0.0, lt=1.0, help="bert4rec: share of items masked in training")
    distill: DistillConfig = field(factory=DistillConfig)
    fusion: str = field("none", choices=FUSIONS, help="how pretrained graph item embeddings enter the model")
    graph_finetune: bool = field(False, help="fine-tune the graph embeddings (false: frozen)")
    heads: HeadsConfig = field(factory=HeadsConfig)


@dataclass
class TrainConfig:
    loss: str = field("bce", choices=("bce", "ce"), help="bce with sampled negatives (reference) or full softmax ce")
    negatives: int = field(1, min=1, help="bce: sampled negatives per position")
    lr: float = field(1e-3, gt=0.0)
    weight_decay: float = field(0.0, min=0.0)
    batch_size: int = field(128, min=1)
    epochs: int = field(200, min=1)
    patience: int = field(20, min=1, help="epochs without a better validation NDCG@10 before stopping")
    min_epochs: int = field(
        0, min=0, keyed_if_set=True,
        help="no early stop before this epoch: a noisy validation curve early on cannot end training")
    seeds: list[int] = field(factory=lambda: [42], help="one model per seed; metrics report mean and std")
    device: str = field("auto", help="auto, cpu, cuda or cuda:N")
    eval_batch_size: int = field(512, min=1)
    valid_protocol: str = field("full", choices=("full", "sampled"), help="protocol of the early-stopping metric")
    max_batches: Optional[int] = field(None, min=1, help="stop each epoch after this many batches (quick checks)")
    # 32 made an amazon-beauty LLM-ESR epoch 2.9x faster (12.6 s vs 37.1 s, one thread).
    length_buckets: int = field(
        32, min=1, help="sort users by length within windows of this many batches, then shuffle the batches: "
        "less padding, faster epochs; 1 keeps plain random batches (the reference)")
