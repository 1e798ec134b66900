"""The LLM-ESR dual-view sequential recommender and its plain (id-only) baseline.

Implements Q. Liu et al., "Large Language Models Enhanced Sequential
Recommendation for Long-tail User and Item", NeurIPS 2024:

* semantic view: frozen LLM item embeddings through an adapter (d_llm → d_llm/2 → d);
* collaborative view: trainable item-id embeddings initialised with the PCA of
  the LLM embeddings;
* one shared sequence encoder for both views (optional cross-attention between
  them); the user vector is both views' last outputs; an item's score is the
  sum of the per-view dot products.

The ``plain`` variant keeps only the collaborative view, randomly initialised.
Every model offers the same contract (:meth:`SeqRecommender.training_loss`,
:meth:`user_vectors`, :meth:`score_all`, :meth:`score_items`), so one trainer
and one evaluator serve them all.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .backbones import build_backbone, valid_mask
from .batches import Batch, last_positions
from .config import SeqConfig


class ItemViews(nn.Module):
    """Item representations per view. ``lookup(ids)`` -> one [..., d] tensor per view.

    Item ids run 1..N; 0 is padding; N + 1 is the mask token (Bert4Rec).
    """

    def __init__(self, num_items: int, d: int, llm: torch.Tensor | None, pca: torch.Tensor | None, mask_token: bool):
        super().__init__()
        self.num_items = num_items
        self.ids = nn.Embedding(num_items + 2, d, padding_idx=0)
        nn.init.normal_(self.ids.weight, std=0.02)
        with torch.no_grad():
            if pca is not None:
                self.ids.weight[: num_items + 1] = pca
            self.ids.weight[0].zero_()
        self.semantic = llm is not None
        if self.semantic:
            self.register_buffer("llm", llm.float())  # frozen: a buffer, not a parameter
            width = llm.shape[1]
            self.adapter = nn.Sequential(nn.Linear(width, width // 2), nn.Linear(width // 2, d))
            # Only models that mask items own a mask vector (unused parameters would stall DDP).
            self.semantic_mask = nn.Parameter(torch.zeros(d)) if mask_token else None

    @property
    def names(self) -> list[str]:
        return ["semantic", "collaborative"] if self.semantic else ["collaborative"]

    def lookup(self, ids: torch.Tensor) -> list[torch.Tensor]:
        views = [self.ids(ids)]
        if self.semantic:
            views.insert(0, self._semantic(ids))
        return views

    def tables(self) -> list[torch.Tensor]:
        """[N + 1, d] per view (row 0 padding), for scoring every item."""
        ids = torch.arange(self.num_items + 1, device=self.ids.weight.device)
        return self.lookup(ids)

    def _semantic(self, ids: torch.Tensor) -> torch.Tensor:
        # Adapt each distinct item once per call: batches repeat items a lot.
        unique, inverse = torch.unique(ids.clamp(max=self.num_items), return_inverse=True)
        rows = self.adapter(self.llm[unique])[inverse]
        if self.semantic_mask is None:
            return rows
        is_mask = (ids > self.num_items).unsqueeze(-1)
        return torch.where(is_mask, self.semantic_mask.expand_as(rows), rows)


class CrossViewAttention(nn.Module):
    """Each view attends to the other at the positions it may see. Inputs/outputs: two [B, T, d]."""

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
        out = []
        for i, (query, other) in enumerate(zip(views, views[::-1])):
            mixed, _ = self.attn[i](self.norm[i](query), other, other, attn_mask=mask, need_weights=False)
            out.append(query + mixed)
        return out


class SeqRecommender(nn.Module):
    def __init__(self, cfg: SeqConfig, num_items: int, llm: torch.Tensor | None = None, pca: torch.Tensor | None = None):
        super().__init__()
        self.cfg = cfg
        self.num_items = num_items
        self.mask_token = num_items + 1
        use_llm = cfg.variant != "plain"
        self.views = ItemViews(num_items, cfg.hidden_size, llm if use_llm else None, pca if use_llm else None,
                               mask_token=cfg.backbone == "bert4rec")
        self.dropout = nn.Dropout(cfg.dropout)
        self.encoder = build_backbone(cfg.backbone, cfg.hidden_size, cfg.num_layers, cfg.num_heads, cfg.dropout,
                                      cfg.max_length, cfg.causal, cfg.reference_padding)
        self.cross = None
        if cfg.cross_attention and use_llm:
            self.cross = CrossViewAttention(cfg.hidden_size, cfg.num_heads, cfg.dropout)

    @property
    def bidirectional(self) -> bool:
        return self.cfg.backbone == "bert4rec"

    @property
    def user_dim(self) -> int:
        return self.cfg.hidden_size * len(self.views.names)

    # ---------------------------------------------------------------- encoding

    def sequence_outputs(self, items: torch.Tensor, lengths: torch.Tensor) -> list[torch.Tensor]:
        """Encoder outputs per view, each [B, T, d]."""
        views = [self.dropout(v) for v in self.views.lookup(items)]
        if self.cross is not None:
            valid = valid_mask(lengths, items.shape[1], self.cfg.reference_padding)
            views = self.cross(views, valid, causal=self.cfg.causal and not self.bidirectional)
        return [self.encoder(v, lengths) for v in views]

    def user_vectors(self, items: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        """User representations [B, V * d] from histories ``items`` [B, T] (Bert4Rec appends a mask token)."""
        if self.bidirectional:
            items, lengths = self._append_mask(items, lengths)
        outputs = self.sequence_outputs(items, lengths)
        return self._gather_last(outputs, items, lengths)

    def _gather_last(self, outputs: list[torch.Tensor], items: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        last = last_positions(items, lengths, self.cfg.reference_padding)
        rows = torch.arange(items.shape[0], device=items.device)
        return torch.cat([out[rows, last] for out in outputs], dim=-1)

    def _append_mask(self, items: torch.Tensor, lengths: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        b, t = items.shape
        if self.cfg.reference_padding:
            tail = torch.full((b, 1), self.mask_token, dtype=items.dtype, device=items.device)
            return torch.cat([items, tail], dim=1), lengths + 1
        wider = torch.cat([items, torch.zeros((b, 1), dtype=items.dtype, device=items.device)], dim=1)
        wider[torch.arange(b, device=items.device), lengths] = self.mask_token
        return wider, lengths + 1

    # ----------------------------------------------------------------- scoring

    def item_tables(self) -> list[torch.Tensor]:
        return self.views.tables()

    def score_all(self, users: torch.Tensor, tables: list[torch.Tensor] | None = None) -> torch.Tensor:
        """Scores [B, N + 1] of every item for user vectors [B, V * d]; column 0 (padding) is -inf."""
        tables = tables if tables is not None else self.item_tables()
        parts = users.split(self.cfg.hidden_size, dim=-1)
        scores = sum(p @ t.T for p, t in zip(parts, tables))
        scores[:, 0] = -float("inf")
        return scores

    def score_items(self, users: torch.Tensor, items: torch.Tensor) -> torch.Tensor:
        """Scores [B, C] of candidate ``items`` [B, C] for user vectors [B, V * d]."""
        parts = users.split(self.cfg.hidden_size, dim=-1)
        return sum((p.unsqueeze(1) * e).sum(-1) for p, e in zip(parts, self.views.lookup(items)))

    # ---------------------------------------------------------------- training

    def forward(self, batch: Batch, negatives: torch.Tensor | None, norm: float, loss: str,
                history: Batch | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """Training loss and student user vectors (see :meth:`training_loss`).

        Bidirectional models encode ``history`` (the whole training sequence) for
        the student, since their training inputs are masked.
        """
        value, students = self.training_loss(batch, negatives, norm, loss)
        if self.bidirectional and history is not None:
            students = self.user_vectors(history.items, history.lengths)
        return value, students

    def training_loss(self, batch: Batch, negatives: torch.Tensor | None, norm: float, loss: str) -> tuple[torch.Tensor, torch.Tensor]:
        """Next-item (or masked-item) loss summed over positions and divided by ``norm``.

        ``batch.targets`` [B, T] holds the item to predict at each position (0: none);
        ``negatives`` [B, T, n] the sampled negatives for ``bce``. Returns the loss and
        the student user vectors [B, V * d] (last position) for self-distillation.
        """
        outputs = self.sequence_outputs(batch.items, batch.lengths)
        where = batch.targets > 0
        if loss == "ce":
            value = self._softmax_loss(outputs, batch.targets, where)
        else:
            value = self._bce_loss(outputs, batch.targets, negatives, where)
        students = self._gather_last(outputs, batch.items, batch.lengths)
        return value / norm, students

    def _bce_loss(self, outputs, targets, negatives, where) -> torch.Tensor:
        hidden = [o[where] for o in outputs]  # [P, d] per view
        positives = self.views.lookup(targets[where])  # [P, d] per view
        sampled = self.views.lookup(negatives[where])  # [P, n, d] per view
        pos = sum((h * e).sum(-1) for h, e in zip(hidden, positives))
        neg = sum((h.unsqueeze(1) * e).sum(-1) for h, e in zip(hidden, sampled))
        return (F.softplus(-pos) + F.softplus(neg).mean(-1)).sum()

    def _softmax_loss(self, outputs, targets, where) -> torch.Tensor:
        tables = self.item_tables()
        logits = sum(o[where] @ t.T for o, t in zip(outputs, tables))
        logits[:, 0] = -float("inf")
        return F.cross_entropy(logits, targets[where], reduction="sum")
