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

* training (once :meth:`~SeqRecommender.prepare_training` gave it its data,
  objective and auxiliary terms): :meth:`~SeqRecommender.training_batch` (the
  backbone's training scheme decides what is predicted: next items, masked
  items, or each prefix's next item; the objective draws the candidates),
  :meth:`~SeqRecommender.forward` (the batch's whole loss, auxiliary terms such
  as self-distillation included), :meth:`~SeqRecommender.begin_epoch`;
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

from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from ..data.sequences import SequenceData, last_positions
from .backbones import backbone_spec, left_padded, valid_mask
from .config import STEP_POSITIONS, SeqConfig
from .objectives import Candidates, Objective
from .readouts import GroupReadouts
from .schemes import TrainingBatch
from .variants import variant_spec
from .views import ItemViews, ViewTables


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
        spec = backbone_spec(cfg)
        self.scheme = spec.scheme(cfg, num_items + 1)  # the mask token's id follows the items
        self.left_pad = left_padded(cfg)
        self.causal = spec.causal(cfg)
        self.reads_one_position = spec.reads_one_position
        variant = variant_spec(cfg)
        self.views = ItemViews(
            num_items,
            cfg.hidden_size,
            llm if variant.semantic else None,
            init if variant.text else None,
            graph,
            cfg.fusion,
            mask_token=self.scheme.mask_token,
            graph_finetune=cfg.graph_finetune,
        )
        self.input_scale = cfg.hidden_size**0.5 if spec.scale_inputs else 1.0
        self.encoder = spec.encoder(cfg)
        self.cross = (
            CrossViewAttention(cfg.hidden_size, cfg.num_heads, cfg.dropout)
            if cfg.cross_attention and len(self.views.names) > 1
            else None
        )
        self.readouts = None
        if cfg.readouts.mode != "none":
            if tail_users is None:
                raise ValueError("user-group readouts need the user groups (tail_users)")
            self.readouts = GroupReadouts(self.user_dim, cfg.readouts, tail_users)
        # fitted after training (popularity_correction): every item's score offset, saved with the model
        if cfg.popularity_correction != "none":
            self.register_buffer("item_bias", torch.zeros(num_items + 1))
        else:
            self.item_bias = None
        self.training_parts: TrainingParts | None = None  # set by prepare_training, never saved

    @property
    def appended_tokens(self) -> int:
        """Positions ``user_vectors`` adds after a history (a mask token): histories
        are cut to ``max_length`` minus these, so no input is longer than in training."""
        return self.scheme.appended_tokens

    @property
    def user_dim(self) -> int:
        return self.cfg.hidden_size * len(self.views.names)

    # ---------------------------------------------------------------- encoding

    def sequence_outputs(self, items: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        """Encoder outputs of all views, concatenated: [B, T, V * d]."""
        return torch.cat([self.encoder(v, lengths) for v in self._view_inputs(items, lengths)], dim=-1)

    def _view_inputs(self, items: torch.Tensor, lengths: torch.Tensor) -> list[torch.Tensor]:
        views = [v * self.input_scale for v in self.views.lookup(items)]
        if self.cross is not None:
            valid = valid_mask(lengths, items.shape[1], self.left_pad)
            views = self.cross(views, valid, causal=self.causal)
        return views

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
        if self.appended_tokens:
            items, lengths = self._append_mask(items, lengths)
        vectors = self._last_outputs(items, lengths)
        # users first: self-distillation passes none, and reading ``active`` syncs a GPU
        if (users is None and groups is None) or self.readouts is None or not self.readouts.active:
            return vectors
        return self.readouts(vectors, users, groups=groups)

    def _last_outputs(self, items: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        """Each row's output at its most recent position, [B, V * d]. In eval mode an encoder that can
        computes that position alone; training keeps the full pass, so dropout draws stay as they were."""
        if self.training or not self.reads_one_position:
            return self._last(self.sequence_outputs(items, lengths), items, lengths)
        last = last_positions(items, lengths, self.left_pad)
        return torch.cat([self.encoder(v, lengths, at=last) for v in self._view_inputs(items, lengths)], dim=-1)

    def _last(self, outputs: torch.Tensor, items: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        last = last_positions(items, lengths, self.left_pad)
        return outputs[torch.arange(items.shape[0], device=items.device), last]

    def _append_mask(self, items: torch.Tensor, lengths: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        b = items.shape[0]
        mask_id = self.num_items + 1
        if self.left_pad:
            tail = torch.full((b, 1), mask_id, dtype=items.dtype, device=items.device)
            return torch.cat([items, tail], dim=1), lengths + 1
        wider = torch.cat([items, torch.zeros((b, 1), dtype=items.dtype, device=items.device)], dim=1)
        wider[torch.arange(b, device=items.device), lengths] = mask_id
        return wider, lengths + 1

    # ----------------------------------------------------------------- scoring

    def item_tables(self) -> ViewTables:
        """[N + 1, V * d]: every item's views side by side (row 0 padding), concatenated a block at a time."""
        return ViewTables(self.views.tables())

    def item_vectors(self, items: torch.Tensor) -> torch.Tensor:
        """[..., V * d]: the items' views, concatenated."""
        return torch.cat(self.views.lookup(items), dim=-1)

    def score_all(
        self, users: torch.Tensor, tables: ViewTables | None = None, columns: slice | None = None
    ) -> torch.Tensor:
        """Scores [B, N + 1] of every item for user vectors [B, V * d]; column 0 (padding) is -inf.
        ``columns``: only the items of that slice of the catalogue, [B, len(columns)]."""
        tables = tables if tables is not None else self.item_tables()
        columns = columns if columns is not None else slice(0, len(tables))
        scores = users @ tables[columns].T
        if self.item_bias is not None:
            scores = scores + self.item_bias[columns]
        if columns.start in (0, None):
            scores[:, 0] = -float("inf")
        return scores

    def score_items(self, users: torch.Tensor, items: torch.Tensor) -> torch.Tensor:
        """Scores [B, C] of candidate ``items`` [B, C] for user vectors [B, V * d]."""
        scores = (users.unsqueeze(1) * self.item_vectors(items)).sum(-1)
        return scores if self.item_bias is None else scores + self.item_bias[items]

    # ---------------------------------------------------------------- training

    def prepare_training(self, data: SequenceData, objective: Objective, auxiliary: tuple = ()) -> None:
        """What training needs besides the weights: the sequences, the objective and auxiliary loss terms
        (each with ``begin_epoch(model)`` and ``loss(model, batch, outputs)``, e.g. self-distillation)."""
        lengths = np.array([len(data.train_sequence(u)) for u in data.trainable_users()])
        expected = float(self.scheme.targets_per_user(lengths, self.cfg.max_length).mean()) if len(lengths) else 1.0
        self.training_parts = TrainingParts(data, objective, tuple(auxiliary), expected)

    def begin_epoch(self) -> None:
        for term in self.parts.auxiliary:
            term.begin_epoch(self)

    def training_batch(self, users: np.ndarray, generator: torch.Generator) -> TrainingBatch:
        """The batch these users train on, with the candidates the objective draws for its targets.

        Every target weighs the same, whatever batch it falls in: the summed loss is divided by
        the batch's expected number of targets, not its own. Length buckets make batches of short
        histories only; dividing by their own few targets gave each of them several times the
        weight of a long history's target (amazon-scientific validation 0.1047 against 0.1072).
        """
        parts = self.parts
        inputs, owner = self.scheme.inputs(parts.data, users, generator)
        candidates = parts.objective.draw(inputs.targets, generator)
        return TrainingBatch(inputs, candidates, len(users) * parts.targets_per_user, np.asarray(users), owner)

    def forward(self, batch: TrainingBatch) -> torch.Tensor:
        """The batch's loss: next-item (or masked-item) loss summed over its targets and divided by
        ``batch.norm``, plus every auxiliary term. ``batch.inputs.targets`` [R, T] holds the item to
        predict at each position (0: none); ``batch.candidates`` what positions are scored against."""
        inputs = batch.inputs
        outputs = self.sequence_outputs(inputs.items, inputs.lengths)
        where = inputs.targets > 0
        targets = inputs.targets[where]
        candidates = batch.candidates.at(where)
        # Scores and their softmax in fp32 under bf16 autocast too (only the encoder's products in bf16): at
        # 921k items the sampled softmax with bf16 scores did not recover from a loss spike (benchmarks/README.md)
        with torch.autocast(outputs.device.type, enabled=False):
            outputs = outputs.float()
            value = self.position_loss(outputs[where], targets, candidates)
            if self.readouts is not None and self.readouts.trains_jointly:
                projected = self.readouts.project(outputs, inputs.users)
                value = value + self.position_loss(projected[where], targets, candidates)
            if self.cfg.view_loss > 0:
                value = value + self.cfg.view_loss * self.view_losses(outputs[where], targets, candidates)
        value = value / batch.norm
        for term in self.parts.auxiliary:
            value = value + term.loss(self, batch, outputs)
        return value

    def position_loss(self, hidden: torch.Tensor, targets: torch.Tensor, candidates: Candidates) -> torch.Tensor:
        """Summed next-item loss of position vectors ``hidden`` [P, V * d] for ``targets`` [P]."""
        return self.parts.objective.loss(hidden, targets, candidates, self.item_vectors, self.warm_tables)

    def view_losses(self, hidden: torch.Tensor, targets: torch.Tensor, candidates: Candidates) -> torch.Tensor:
        """The summed next-item loss of each view's score on its own (its slice of ``hidden`` [P, V * d])."""
        d, total = self.cfg.hidden_size, 0.0
        for v in range(len(self.views.names)):
            part = slice(v * d, (v + 1) * d)
            vectors = lambda ids, part=part: self.item_vectors(ids)[..., part]
            table = lambda part=part: self.warm_tables()[:, part]
            total = total + self.parts.objective.loss(hidden[:, part], targets, candidates, vectors, table)
        return total

    def last_outputs(self, batch: TrainingBatch, outputs: torch.Tensor) -> torch.Tensor:
        """The shared vector [B, V * d] of each user of a training batch, as inference reads it: the last
        output of each row, or, where rows are not the users' whole sequences, their encoded history."""
        history = batch.inputs.history
        if history is not None:
            return self.user_vectors(history.items, history.lengths)
        return self._last(outputs, batch.inputs.items, batch.inputs.lengths)

    @property
    def parts(self) -> TrainingParts:
        """What :meth:`prepare_training` set (data, objective, auxiliary terms); an error before it."""
        if self.training_parts is None:
            raise RuntimeError("call prepare_training before training the model")
        return self.training_parts

    @torch.no_grad()
    def position_vectors(
        self, data: SequenceData, users: np.ndarray, batch_size: int = 256, positions: int = STEP_POSITIONS
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """The shared vectors [P, V * d] at every training position of ``users`` and their next items [P],
        read as inference reads them (eval mode: no dropout). Schemes that read positions only. One
        encoder pass reads at most ``positions`` input positions (a prefix scheme: a row a target)."""
        device, was_training = self.input_device, self.training
        self.eval()
        vectors, targets = [], []
        for lo in range(0, len(users), batch_size):
            batch = self.scheme.reading_batch(data, users[lo : lo + batch_size]).to(device)
            rows = max(1, positions // batch.items.shape[1])
            for start in range(0, len(batch.items), rows):
                part = batch.rows(slice(start, start + rows))
                outputs = self.sequence_outputs(part.items, part.lengths)
                where = part.targets > 0
                vectors.append(outputs[where])
                targets.append(part.targets[where])
        self.train(was_training)
        return torch.cat(vectors), torch.cat(targets)

    @property
    def input_device(self) -> torch.device:
        return self.views.ids.weight.device

    def warm_tables(self) -> torch.Tensor:
        """[num_warm + 1, V * d]: the items training scores against (cold items never are)."""
        return self.item_tables()[: self.num_warm + 1]


@dataclass
class TrainingParts:
    data: SequenceData
    objective: Objective
    auxiliary: tuple
    targets_per_user: float  # expected training targets of a user (the loss's normaliser per user)
