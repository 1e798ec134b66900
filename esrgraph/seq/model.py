"""The LLM-ESR dual-view sequential recommender, its plain baseline and this project's extensions.

Implements "Large Language Models Enhanced Sequential Recommendation for
Long-tail User and Item" (NeurIPS 2024): a semantic view
(frozen LLM item embeddings through an adapter) and a collaborative view
(item-id embeddings initialised with their PCA), one shared sequence encoder
for both (optional cross-attention between them); the user vector is every
view's last output, concatenated, and an item's score is the sum of the
per-view dot products — one dot product of concatenated vectors.

The ``plain`` variant keeps only the collaborative view, randomly initialised.
Extensions: graph fusion (:mod:`.views`) and head/tail user heads (:mod:`.heads`).

Every model offers the same contract (:meth:`SeqRecommender.forward` for
training, :meth:`user_vectors`, :meth:`score_all`, :meth:`score_items`), so one
trainer and one evaluator serve them all.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .backbones import build_backbone, valid_mask
from .batches import Batch, last_positions
from .config import SeqConfig
from .heads import GroupHeads
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
        mixed = [q + self.attn[i](self.norm[i](q), k, k, attn_mask=mask, need_weights=False)[0]
                 for i, (q, k) in enumerate(zip(pair, pair[::-1]))]
        return mixed + views[2:]


class SeqRecommender(nn.Module):
    """Inputs: item-id histories [B, T] (right-padded with 0) and their lengths [B].

    ``llm`` [N + 1, d_llm]: LLM item embeddings; ``init`` [N + 1, d]: collaborative
    initialisation (PCA, or PCA ⊕ graph for fusion ``init``); ``graph`` [N + 1, d_g]:
    graph item embeddings (fusion ``gate``/``view``); ``tail_users`` [U]: the user
    groups of the head/tail heads.
    """

    def __init__(self, cfg: SeqConfig, num_items: int, llm: torch.Tensor | None = None,
                 init: torch.Tensor | None = None, graph: torch.Tensor | None = None,
                 tail_users: torch.Tensor | None = None):
        super().__init__()
        self.cfg = cfg
        self.num_items = num_items
        self.mask_token = num_items + 1
        use_llm = cfg.variant != "plain"
        self.views = ItemViews(num_items, cfg.hidden_size, llm if use_llm else None, init if use_llm else None,
                               graph, cfg.fusion, mask_token=cfg.backbone == "bert4rec",
                               graph_finetune=cfg.graph_finetune)
        self.dropout = nn.Dropout(cfg.dropout)
        self.encoder = build_backbone(cfg.backbone, cfg.hidden_size, cfg.num_layers, cfg.num_heads, cfg.dropout,
                                      cfg.max_length, cfg.causal, cfg.reference_padding)
        self.cross = CrossViewAttention(cfg.hidden_size, cfg.num_heads, cfg.dropout) if cfg.cross_attention and use_llm else None
        self.heads = None
        if cfg.heads.enabled:
            if tail_users is None:
                raise ValueError("head/tail heads need the user groups (tail_users)")
            self.heads = GroupHeads(self.user_dim, cfg.heads, tail_users)

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
        views = [self.dropout(v) for v in self.views.lookup(items)]
        if self.cross is not None:
            valid = valid_mask(lengths, items.shape[1], self.cfg.reference_padding)
            views = self.cross(views, valid, causal=self.cfg.causal and not self.bidirectional)
        return torch.cat([self.encoder(v, lengths) for v in views], dim=-1)

    def user_vectors(self, items: torch.Tensor, lengths: torch.Tensor, users: torch.Tensor | None = None) -> torch.Tensor:
        """User vectors [B, V * d] from histories (Bert4Rec appends a mask token).

        With ``users`` given, each is mixed with its group's head (once the heads
        are active); without, the shared vector (as self-distillation uses).
        """
        if self.bidirectional:
            items, lengths = self._append_mask(items, lengths)
        vectors = self._last(self.sequence_outputs(items, lengths), items, lengths)
        # users first: self-distillation passes none, and reading ``active`` syncs a GPU
        return self.heads(vectors, users) if users is not None and self.heads is not None and self.heads.active else vectors

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

    def forward(self, batch: Batch, negatives: torch.Tensor | None, norm: float, loss: str,
                history: Batch | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """Next-item (or masked-item) loss summed over positions and divided by ``norm``,
        and the shared student user vectors [B, V * d] for self-distillation.

        ``batch.targets`` [B, T] holds the item to predict at each position (0: none);
        ``negatives`` [B, T, n] the sampled negatives for ``bce``. Bidirectional
        models encode ``history`` (the unmasked training sequence) for the student.
        """
        outputs = self.sequence_outputs(batch.items, batch.lengths)
        students = self._last(outputs, batch.items, batch.lengths)
        if self.bidirectional and history is not None:
            students = self.user_vectors(history.items, history.lengths)
        where = batch.targets > 0
        targets = batch.targets[where]
        candidates = self._candidates(targets, negatives, where, loss)
        value = self.position_loss(outputs[where], targets, candidates, loss)
        if self.heads is not None and not self.heads.fit_after:
            value = value + self._heads_loss(outputs, batch.users, where, targets, candidates, loss)
        return value / norm, students

    def _candidates(self, targets: torch.Tensor, negatives: torch.Tensor | None, where: torch.Tensor,
                    loss: str) -> tuple[torch.Tensor, ...]:
        """What positions are scored against: every item (``ce``), or the target's and the negatives' vectors."""
        if loss == "ce":
            return (self.item_tables(),)
        return self.item_vectors(targets), self.item_vectors(negatives[where])

    def _heads_loss(self, outputs: torch.Tensor, users: torch.Tensor, where: torch.Tensor, targets: torch.Tensor,
                    candidates: tuple[torch.Tensor, ...], loss: str) -> torch.Tensor:
        """Each group head's loss on its own users (and the mixed score's, when θ is learned)."""
        if not self.heads.shared_gradient:  # a readout: the shared model learns from its own loss only
            outputs, candidates = outputs.detach(), tuple(c.detach() for c in candidates)
        projected = self.heads.project(outputs, users)
        value = self.position_loss(projected[where], targets, candidates, loss)
        if self.heads.learns_theta:
            mixed = self.heads(outputs, users, projected)
            value = value + self.position_loss(mixed[where], targets, candidates, loss)
        return value

    @staticmethod
    def position_loss(hidden: torch.Tensor, targets: torch.Tensor, candidates: tuple[torch.Tensor, ...],
                       loss: str) -> torch.Tensor:
        """Summed next-item loss of position vectors ``hidden`` [P, V * d] for ``targets`` [P]."""
        if loss == "ce":
            logits = hidden @ candidates[0].T
            logits[:, 0] = -float("inf")
            return F.cross_entropy(logits, targets, reduction="sum")
        pos_items, neg_items = candidates
        pos = (hidden * pos_items).sum(-1)
        neg = (hidden.unsqueeze(1) * neg_items).sum(-1)
        return (F.softplus(-pos) + F.softplus(neg).mean(-1)).sum()
