"""The LLM-ESR dual-view sequential recommender, its plain baseline and this project's extensions.

Implements "Large Language Models Enhanced Sequential Recommendation for
Long-tail User and Item" (NeurIPS 2024): a semantic view
(frozen LLM item embeddings through an adapter) and a collaborative view
(item-id embeddings initialised with their PCA), one shared sequence encoder
for both (optional cross-attention between them); the user vector is every
view's last output, concatenated, and an item's score is the sum of the
per-view dot products — one dot product of concatenated vectors.

The ``plain`` variant keeps only the collaborative view, randomly initialised.
Extensions: graph fusion (:mod:`.views`) and user-group readouts (:mod:`.readouts`).

Every model offers the same contract, so one trainer and one evaluator serve
every backbone and variant without knowing which it is:

* training: :meth:`~SeqRecommender.training_batch` (the model decides what it
  predicts: next items, or masked items for Bert4Rec), :meth:`~SeqRecommender.forward`
  (the loss of a batch under an objective, and the user vectors that
  self-distillation aligns), :meth:`~SeqRecommender.distill_weights`;
* scoring: :meth:`~SeqRecommender.user_vectors`, :meth:`~SeqRecommender.item_tables`,
  :meth:`~SeqRecommender.score_all`, :meth:`~SeqRecommender.score_items`;
* reading: :meth:`~SeqRecommender.position_vectors` (the vector at every training
  position, for readouts fitted after training).

Item inputs enter the encoder scaled by √d (d the hidden size), as the
Transformer and SASRec do: the id and adapter outputs start near the scale of
their initialisation (0.02), and unscaled they are drowned by the position
embeddings; scaled, amazon-scientific's plain SASRec reached validation
NDCG@10 0.30 in 35 epochs instead of 0.24 in 40 (BCE). Dropout is applied
once to the encoder's input (it was applied twice, dropping 75% of it).
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from ..data.sequences import Batch, SequenceData, last_positions
from .backbones import build_backbone, valid_mask
from .config import SeqConfig
from .objectives import Candidates, Objective, objective_loss
from .readouts import GroupReadouts
from .views import ItemViews


class CrossViewAttention(nn.Module):
    """The first two views attend to each other at the positions they may see. Inputs/outputs: [B, T, d] per view."""

    def __init__(self, d: int, heads: int, dropout: float):
        super().__init__()
        self.attn = nn.ModuleList(nn.MultiheadAttention(d, heads, dropout=dropout, batch_first=True) for _ in range(2))
        self.norm = nn.ModuleList(nn.LayerNorm(d) for _ in range(2))

    def forward(self, views: list[torch.Tensor], valid: torch.Tensor, causal: bool) -> list[torch.Tensor]:
        t = valid.shape[1]
        blocked = ~valid.unsqueeze(1).expand(-1, t, -1)
        if causal:
            blocked = blocked | torch.ones(t, t, dtype=torch.bool, device=valid.device).triu(1)
        blocked = blocked & ~torch.eye(t, dtype=torch.bool, device=valid.device)
        mask = blocked.repeat_interleave(self.attn[0].num_heads, dim=0)
        pair = views[:2]
        mixed = [
            q + self.attn[i](self.norm[i](q), k, k, attn_mask=mask, need_weights=False)[0]
            for i, (q, k) in enumerate(zip(pair, pair[::-1]))
        ]
        return mixed + views[2:]


class SeqRecommender(nn.Module):
    """Inputs: item-id histories [B, T] (right-padded with 0) and their lengths [B].

    ``llm`` [N + 1, d_llm]: LLM item embeddings; ``init`` [N + 1, d]: collaborative
    initialisation (PCA, or PCA ⊕ graph for fusion ``init``); ``graph`` [N + 1, d_g]:
    graph item embeddings (fusion ``gate``/``view``); ``tail_users`` [U]: the user
    groups of the user-group readouts.
    """

    def __init__(
        self,
        cfg: SeqConfig,
        num_items: int,
        llm: torch.Tensor | None = None,
        init: torch.Tensor | None = None,
        graph: torch.Tensor | None = None,
        tail_users: torch.Tensor | None = None,
        num_warm: int | None = None,
    ):
        super().__init__()
        self.cfg = cfg
        self.num_items = num_items
        # items 1..num_warm have interactions; cold items (after them) never take part in training
        self.num_warm = num_items if num_warm is None else num_warm
        self.mask_token = num_items + 1
        use_llm = cfg.variant != "plain"
        self.views = ItemViews(
            num_items,
            cfg.hidden_size,
            llm if use_llm else None,
            init if use_llm else None,
            graph,
            cfg.fusion,
            mask_token=cfg.backbone == "bert4rec",
            graph_finetune=cfg.graph_finetune,
        )
        self.input_scale = cfg.hidden_size**0.5
        self.encoder = build_backbone(
            cfg.backbone,
            cfg.hidden_size,
            cfg.num_layers,
            cfg.num_heads,
            cfg.dropout,
            cfg.max_length,
            cfg.causal,
            cfg.reference_padding,
        )
        self.cross = (
            CrossViewAttention(cfg.hidden_size, cfg.num_heads, cfg.dropout) if cfg.cross_attention and use_llm else None
        )
        self.readouts = None
        if cfg.readouts.mode != "none":
            if tail_users is None:
                raise ValueError("user-group readouts need the user groups (tail_users)")
            self.readouts = GroupReadouts(self.user_dim, cfg.readouts, tail_users)

    @property
    def bidirectional(self) -> bool:
        return self.cfg.backbone == "bert4rec"

    @property
    def appended_tokens(self) -> int:
        """Positions ``user_vectors`` adds after a history (Bert4Rec's mask token): histories
        are cut to ``max_length`` minus these, so no input is longer than in training."""
        return 1 if self.bidirectional else 0

    @property
    def user_dim(self) -> int:
        return self.cfg.hidden_size * len(self.views.names)

    # ---------------------------------------------------------------- encoding

    def sequence_outputs(self, items: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        """Encoder outputs of all views, concatenated: [B, T, V * d]."""
        views = [v * self.input_scale for v in self.views.lookup(items)]
        if self.cross is not None:
            valid = valid_mask(lengths, items.shape[1], self.cfg.reference_padding)
            views = self.cross(views, valid, causal=self.cfg.causal and not self.bidirectional)
        return torch.cat([self.encoder(v, lengths) for v in views], dim=-1)

    def user_vectors(
        self,
        items: torch.Tensor,
        lengths: torch.Tensor,
        users: torch.Tensor | None = None,
        groups: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """User vectors [B, V * d] from histories (Bert4Rec appends a mask token).

        With ``users`` (or, for histories of users the dataset does not know, their
        ``groups``: 1 tail, 0 head) each is mixed with its group's readout once the
        readouts are active; without, the shared vector (as self-distillation uses).
        """
        if self.bidirectional:
            items, lengths = self._append_mask(items, lengths)
        vectors = self._last(self.sequence_outputs(items, lengths), items, lengths)
        # users first: self-distillation passes none, and reading ``active`` syncs a GPU
        if (users is None and groups is None) or self.readouts is None or not self.readouts.active:
            return vectors
        return self.readouts(vectors, users, groups=groups)

    def _last(self, outputs: torch.Tensor, items: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        last = last_positions(items, lengths, self.cfg.reference_padding)
        return outputs[torch.arange(items.shape[0], device=items.device), last]

    def _append_mask(self, items: torch.Tensor, lengths: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        b = items.shape[0]
        if self.cfg.reference_padding:
            tail = torch.full((b, 1), self.mask_token, dtype=items.dtype, device=items.device)
            return torch.cat([items, tail], dim=1), lengths + 1
        wider = torch.cat([items, torch.zeros((b, 1), dtype=items.dtype, device=items.device)], dim=1)
        wider[torch.arange(b, device=items.device), lengths] = self.mask_token
        return wider, lengths + 1

    # ----------------------------------------------------------------- scoring

    def item_tables(self) -> torch.Tensor:
        """[N + 1, V * d]: every item's views, concatenated (row 0 padding)."""
        return torch.cat(self.views.tables(), dim=-1)

    def item_vectors(self, items: torch.Tensor) -> torch.Tensor:
        return torch.cat(self.views.lookup(items), dim=-1)

    def score_all(self, users: torch.Tensor, tables: torch.Tensor | None = None) -> torch.Tensor:
        """Scores [B, N + 1] of every item for user vectors [B, V * d]; column 0 (padding) is -inf."""
        tables = tables if tables is not None else self.item_tables()
        scores = users @ tables.T
        scores[:, 0] = -float("inf")
        return scores

    def score_items(self, users: torch.Tensor, items: torch.Tensor) -> torch.Tensor:
        """Scores [B, C] of candidate ``items`` [B, C] for user vectors [B, V * d]."""
        return (users.unsqueeze(1) * self.item_vectors(items)).sum(-1)

    # ---------------------------------------------------------------- training

    def training_batch(self, data: SequenceData, users: np.ndarray, generator: torch.Generator) -> Batch:
        """The batch these users train on: next-item targets at every position, or, for a
        bidirectional model, a share of masked items (at least one per user) to recover."""
        if not self.bidirectional:
            return data.training_batch(users)
        history = data.history_batch(users, "train", self.appended_tokens)
        batch = data.history_batch(users, "train")
        real = batch.items > 0
        masked = (torch.rand(batch.items.shape, generator=generator) < self.cfg.mask_prob) & real
        none = ~masked.any(1)
        width = batch.items.shape[1]
        last = torch.full_like(batch.lengths, width - 1) if self.cfg.reference_padding else batch.lengths - 1
        masked[none, last[none]] = True
        targets = torch.where(masked, batch.items, torch.zeros_like(batch.items))
        items = torch.where(masked, torch.full_like(batch.items, self.mask_token), batch.items)
        return Batch(batch.users, items, batch.lengths, targets, history)

    def targets_per_user(self, lengths: np.ndarray) -> np.ndarray:
        """Expected training targets of users whose training sequences have ``lengths``: the next
        item at every input position, or, bidirectional, the masked share (at least one)."""
        if not self.bidirectional:
            return np.clip(np.minimum(lengths - 1, self.cfg.max_length), 0, None).astype(float)
        kept = np.minimum(lengths, self.cfg.max_length).astype(float)
        return self.cfg.mask_prob * kept + (1.0 - self.cfg.mask_prob) ** kept

    def distill_weights(self, users: torch.Tensor) -> torch.Tensor | None:
        """[B] weights of each user's self-distillation term (None: every user's counts fully)."""
        if self.readouts is None:
            return None
        return (~self.readouts.skips_distillation(users)).float()

    @torch.no_grad()
    def position_vectors(
        self, data: SequenceData, users: np.ndarray, batch_size: int = 256
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """The shared vectors [P, V * d] at every training position of ``users`` and their next items [P],
        read as inference reads them (eval mode: no dropout). Left-to-right models only."""
        device, was_training = self.input_device, self.training
        self.eval()
        vectors, targets = [], []
        for lo in range(0, len(users), batch_size):
            batch = data.training_batch(users[lo : lo + batch_size]).to(device)
            outputs = self.sequence_outputs(batch.items, batch.lengths)
            where = batch.targets > 0
            vectors.append(outputs[where])
            targets.append(batch.targets[where])
        self.train(was_training)
        return torch.cat(vectors), torch.cat(targets)

    @property
    def input_device(self) -> torch.device:
        return self.views.ids.weight.device

    def forward(
        self, batch: Batch, candidates: Candidates, norm: float, objective: Objective
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Next-item (or masked-item) loss summed over positions and divided by ``norm``,
        and the shared student user vectors [B, V * d] for self-distillation.

        ``batch.targets`` [B, T] holds the item to predict at each position (0: none);
        ``candidates`` what positions are scored against (:mod:`.objectives`). A masked
        batch's student is its unmasked history (``batch.history``).
        """
        outputs = self.sequence_outputs(batch.items, batch.lengths)
        students = self._last(outputs, batch.items, batch.lengths)
        if batch.history is not None:
            students = self.user_vectors(batch.history.items, batch.history.lengths)
        where = batch.targets > 0
        targets = batch.targets[where]
        candidates = candidates.at(where)
        value = self.position_loss(outputs[where], targets, candidates, objective)
        if self.readouts is not None and self.readouts.trains_jointly:
            projected = self.readouts.project(outputs, batch.users)
            value = value + self.position_loss(projected[where], targets, candidates, objective)
        return value / norm, students

    def position_loss(
        self, hidden: torch.Tensor, targets: torch.Tensor, candidates: Candidates, objective: Objective
    ) -> torch.Tensor:
        """Summed next-item loss of position vectors ``hidden`` [P, V * d] for ``targets`` [P]."""
        return objective_loss(
            objective, hidden, targets, candidates, self.item_vectors, self.warm_tables, self.num_warm
        )

    def warm_tables(self) -> torch.Tensor:
        """[num_warm + 1, V * d]: the items training scores against (cold items never are)."""
        tables = self.item_tables()
        return tables if self.num_warm == self.num_items else tables[: self.num_warm + 1]
