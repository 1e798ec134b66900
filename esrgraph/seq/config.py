"""Settings of the sequential recommender (`seq:`) and its training (`train:`)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from ..config_schema import field
from ..errors import ConfigError
from ..training.device import check_device
from .registry import BACKBONES, OBJECTIVES, VARIANTS
from .variants import distills

Fusion = Literal["none", "init", "view"]
Protocol = Literal["full", "sampled"]


@dataclass
class DistillConfig:
    """Retrieval-augmented self-distillation: similar users' encodings teach each user."""

    # 0.5: validation NDCG@10 on amazon-scientific rose over the reference's 0.1 at hidden sizes 64 and 128
    alpha: float = field(0.5, min=0.0, help="weight of the distillation loss (the reference used 0.1)")
    k: int | None = field(None, min=1, help="similar users per teacher; default all of embed.similar_users")
    loss: Literal["mse", "contrastive"] = field("mse", help="mse to the teacher, or in-batch contrastive alignment")
    temperature: float = field(0.1, gt=0.0, help="contrastive alignment temperature")
    # epoch: on amazon-scientific (3 seeds) test NDCG@10 matched per-batch teachers
    # (0.0223 vs 0.0222 full, 0.2108 vs 0.2104 sampled) with epochs 1.8x faster.
    teacher: Literal["batch", "epoch"] = field(
        "epoch", help="encode every user once per epoch, or the similar users for every batch (as the reference)"
    )


@dataclass
class ReadoutsConfig:
    """A separate prediction readout per user group, mixed with the shared score by a weight θ per group."""

    mode: Literal["none", "joint", "fitted"] = field(
        "none",
        help="none; joint: trained with the shared model, head users skip self-distillation, θ fixed "
        "(the seed project's design); fitted: fitted on the trained model's training positions afterwards, "
        "θ per group chosen on validation under both protocols (0 switches a readout off)",
    )
    groups: Literal["head_tail", "all"] = field(
        "head_tail",
        help="head_tail: one readout for the dataset's head users and one for its tail users; "
        "all: one readout for every user (the control)",
    )
    theta_tail: float = field(0.5, min=0.0, max=1.0, help="joint: weight of the tail users' readout (and of 'all')")
    theta_head: float = field(0.5, min=0.0, max=1.0, help="joint: weight of the head users' readout")
    fit_epochs: int = field(20, min=1, help="fitted: passes over each group's training positions")
    fit_lr: float = field(1e-3, gt=0.0, help="fitted: Adam learning rate")
    fit_batch_size: int = field(
        1024, min=1, help="fitted: positions per step (each holds a positions × items score matrix)"
    )
    shared_model: str | None = field(
        None,
        help="fitted: a finished seq stage folder trained with these settings and no readouts, whose models "
        "the readouts start from instead of training (esr ablate sets it)",
    )


@dataclass
class BSARecConfig:
    """The bsarec backbone's frequency branch (it reads a window of seq.max_length positions; the paper: 50)."""

    alpha: float = field(0.7, min=0.0, max=1.0, help="weight of the frequency branch against self-attention")
    cutoff: int = field(5, min=1, help="c: the lowest c // 2 + 1 frequencies of the window are its low-pass part")


@dataclass
class SeqConfig:
    backbone: str = field("sasrec", choices=BACKBONES.choices(), help="sequence encoder")
    variant: str = field(
        "dual-view",
        choices=VARIANTS.choices(),
        help="plain (id embeddings only), dual-view (LLM-ESR without self-distillation), llmesr (the full model) "
        "or text-init (id embeddings only, started at the PCA of the LLM item embeddings)",
    )
    # 256: test NDCG@10 +4% on amazon-beauty and +3% on held-out amazon-office (3 seeds each, every group
    # higher under full ranking) over 128, which had beaten the reference's 64 on validation; since then
    # +4% on amazon-scientific and held-out steam-100k (results/README.md)
    hidden_size: int = field(256, min=1, help="size of each view's item and user vectors (the reference used 64)")
    num_layers: int = field(2, min=1, help="encoder layers")
    num_heads: int = field(1, min=1, help="attention heads per layer (must divide hidden_size)")
    max_length: int = field(200, min=2, help="sequences keep their most recent items up to this length")
    dropout: float = field(0.5, min=0.0, lt=1.0, help="dropout on the encoder's input and inside its layers")
    causal: bool = field(True, help="SASRec causal mask; false reproduces the reference, which had none")
    reference_padding: bool = field(
        False, help="reproduce the reference: left-pad every sequence to max_length and attend to padding"
    )
    cross_attention: bool = field(False, help="cross-attention between the semantic and collaborative views")
    mask_prob: float = field(0.2, gt=0.0, lt=1.0, help="bert4rec: share of items masked in training")
    distill: DistillConfig = field(factory=DistillConfig)
    fusion: Fusion = field(
        "none",
        help="how pretrained graph item embeddings enter the model: none, init "
        "(initialise the collaborative view) or view (a third view with its own score)",
    )
    graph_finetune: bool = field(False, help="fine-tune the graph embeddings (false: frozen)")
    view_loss: float = field(
        0.0,
        min=0.0,
        help="weight of each view's own next-item loss beside the loss of their summed score, so every view "
        "learns to rank alone (0: off)",
    )
    popularity_correction: Literal["none", "fitted"] = field(
        "none",
        help="fitted: after training, scores are lowered by β·log(1 + training popularity), β chosen on "
        "validation NDCG@10 (β = 0 switches it off)",
    )
    readouts: ReadoutsConfig = field(factory=ReadoutsConfig)
    bsarec: BSARecConfig = field(factory=BSARecConfig)

    def check(self, cfg) -> None:
        from .backbones import backbone_spec

        if self.hidden_size % self.num_heads:
            raise ConfigError(f"seq.num_heads ({self.num_heads}) must divide seq.hidden_size ({self.hidden_size})")
        if cfg.embed.pca_dim != self.hidden_size and VARIANTS.get(self.variant).text:
            raise ConfigError(
                f"embed.pca_dim ({cfg.embed.pca_dim}) must equal seq.hidden_size ({self.hidden_size}): "
                "the PCA embeddings initialise the collaborative view; leave embed.pca_dim unset"
            )
        self_distils = distills(self)
        if cfg.embed.users == "auto":  # user vectors only serve self-distillation's similar users
            cfg.embed.users = "text" if self_distils else "none"
        if self_distils and cfg.embed.users == "none":
            raise ConfigError(
                f"embed.users: none, but seq.variant {self.variant} self-distils from similar users; "
                "use embed.users=text or items, or a variant without self-distillation"
            )
        if self.distill.k is None:
            self.distill.k = cfg.embed.similar_users
        elif self.distill.k > cfg.embed.similar_users:
            raise ConfigError(
                f"seq.distill.k ({self.distill.k}) exceeds embed.similar_users ({cfg.embed.similar_users})"
            )
        if self.readouts.mode == "fitted" and not backbone_spec(self).scheme(self, 0).reads_positions:
            # the readouts read each training position's output, and a masked model's outputs see the next item
            raise ConfigError(
                f"seq.readouts.mode: readouts fitted after training read each training position, which the "
                f"{self.backbone} backbone does not train; use seq.readouts.mode=joint"
            )
        if self.readouts.shared_model is not None and self.readouts.mode != "fitted":
            raise ConfigError("seq.readouts.shared_model: only fitted readouts start from a shared model")


# input positions (rows × slots) one encoder pass reads: 2.5-3.6 GiB of a training process at 256 wide
STEP_POSITIONS = 65_536


@dataclass
class TrainConfig:
    loss: str = field(
        "auto",
        choices=lambda: ("auto", *OBJECTIVES.names()),
        help="training objective: ce (full softmax: every item scored at every target), sampled_softmax "
        "(negatives shared by a batch, log-frequency correction: the cost of a step does not grow with the "
        "catalogue), bce or gbce (sampled negatives per position); auto: ce up to 15,000 trainable items, "
        "sampled_softmax above (a model with no text view, seq.variant plain or text-init: ce up to 50,000)",
    )
    negatives: int | None = field(
        None,
        min=1,
        help="bce, gbce: negatives per position; sampled_softmax: per batch (null: the objective's own default, "
        "bce 1, gbce 256, sampled_softmax 2048)",
    )
    sampled_softmax_beta: float = field(
        1.0, min=0.0, help="sampled_softmax: negatives drawn with probability ∝ (popularity + 1)^beta"
    )
    gbce_t: float = field(0.75, min=0.0, max=1.0, help="gbce: calibration t (0: plain bce, 1: full calibration)")
    # 0.999 (about the last 1,000 steps), chosen on amazon-scientific (0.998, 0.99 and 0.9995 lower) and
    # confirmed on amazon-beauty and the held-out data (results/README.md, "Weight averaging by default")
    weight_average: float = field(
        0.999,
        min=0.0,
        lt=1.0,
        help="decay of an exponential moving average of the weights, validated beside them with its own "
        "patience; the better is kept (0: off)",
    )
    # 30: every dataset measured with 0.999 has 39 or more steps an epoch, so its horizon stays 1,000 steps
    weight_average_epochs: float = field(
        30.0,
        min=0.0,
        help="the weight average's horizon spans at most this many epochs: on data with few steps an epoch "
        "its decay is lowered to 1 - 1 / (this * steps an epoch), so the initial weights fade within "
        "the training (0: no limit)",
    )
    lr: float = field(1e-3, gt=0.0, help="Adam learning rate")
    weight_decay: float = field(0.0, min=0.0, help="Adam weight decay")
    sparse_ids: bool | Literal["auto"] = field(
        "auto",
        help="the item-id table gets sparse gradients and a row-wise (lazy) Adam: a step updates only the rows "
        "it read (its inputs, targets and drawn negatives), so its cost does not grow with the catalogue; "
        "needs an objective that draws candidates (not ce) and weight_decay 0; auto: on where both hold and "
        "there are more than 50,000 trainable items",
    )
    batch_size: int | Literal["auto"] = field(
        "auto",
        min=1,
        help="users per batch; auto: 128, fewer where 128 users' training sequences would hold more than "
        "2,048 next-item targets on average (long histories: a batch holds at most about that many)",
    )
    step_positions: int = field(
        STEP_POSITIONS,
        min=1,
        help="most input positions (rows × sequence slots) one forward pass holds; a batch with more trains "
        "in parts whose gradients add up to the whole batch's, so memory is bounded by a part (a prefix "
        "backbone such as bsarec makes a row of every target: 2,048 rows of 200 slots took 21 GB)",
    )
    epochs: int = field(200, min=1, help="most epochs")
    patience: int | Literal["auto"] = field(
        "auto",
        min=1,
        help="epochs without a better validation NDCG@10 before stopping (counted once the floor is beaten); "
        "auto: 10, 5 above 15,000 trainable items",
    )
    min_epochs: int = field(0, min=0, help="no early stop before this epoch")
    floor_margin: float = field(
        0.1,
        min=0.0,
        help="patience starts counting once validation NDCG@10 beats the popularity baseline's "
        "by this share: a model cannot stop on an early popularity peak",
    )
    seeds: list[int] = field(factory=lambda: [42], min=0, help="one model per seed; metrics report mean and std")
    device: str = field("auto", help="auto, cpu, cuda or cuda:N")
    precision: Literal["auto", "native", "fp32", "bf16"] = field(
        "auto",
        help="bf16: the sequence encoder's matrix products, in training and in validation, in bfloat16 "
        "(autocast; weights, optimiser, every score with its softmax and the test evaluation stay fp32), "
        "faster on chips that "
        "compute it natively (AVX-512 BF16, AMX, GPUs); native: bf16 on such a chip, else fp32, at any "
        "size; auto: bf16 on such a chip above 15,000 trainable items with an objective that draws "
        "candidates (not ce), else fp32",
    )
    eval_batch_size: int = field(512, min=1, help="users per batch when ranking")
    valid_protocol: Protocol = field("full", help="protocol of the early-stopping metric")
    valid_users: int | Literal["auto"] | None = field(
        "auto",
        min=1,
        help="validation (early stopping, readouts' θ, the popularity correction) ranks a fixed random sample of "
        "this many users where there are more (null: every user); auto: 50,000 (NDCG@10's standard error near "
        "0.001), 10,000 above 15,000 trainable items (near 0.002; the same users every epoch)",
    )
    max_batches: int | None = field(None, min=1, help="stop each epoch after this many batches (quick checks)")
    checkpoint_minutes: float = field(
        30.0,
        min=0.0,
        help="inside an epoch longer than this, a checkpoint every this many minutes, which the same command "
        "continues from exactly (not with seq.distill.teacher epoch); 0: at epoch ends only. Not part of the "
        "stage's key",
    )
    # 32 made an amazon-beauty LLM-ESR epoch 2.9x faster (12.6 s vs 37.1 s, one thread).
    length_buckets: int = field(
        32,
        min=1,
        help="sort users by length within windows of this many batches, then shuffle the batches: "
        "less padding, faster epochs; 1 keeps plain random batches (the reference)",
    )

    def check(self, cfg) -> None:
        check_device(self.device, "train.device")
        if not self.seeds:
            raise ConfigError("train.seeds: give at least one seed")
        if self.sparse_ids is True and self.weight_decay > 0:
            raise ConfigError(
                f"train.sparse_ids: true leaves the id table without weight decay, but train.weight_decay is "
                f"{self.weight_decay}; set one of them off"
            )
