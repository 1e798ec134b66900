"""Self-attention encoders: SASRec ("Self-Attentive Sequential Recommendation", ICDM 2018)
when causal, Bert4Rec ("BERT4Rec: Sequential Recommendation with Bidirectional Encoder
Representations from Transformer", CIKM 2019) when bidirectional.

The encoder maps item embeddings ``x`` [B, T, d] and ``lengths`` [B] to outputs
[B, T, d]. Padding never changes the outputs at real positions: it is masked
out of attention, and positions count back from each sequence's most recent
item, so results do not depend on how much padding a batch carries or on
``max_length``.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils import skip_init

from ..schemes import MaskedItems, NextItems
from .base import BackboneSpec, init_positions, register, valid_mask


class FeedForward(nn.Module):
    def __init__(self, d: int, dropout: float):
        super().__init__()
        self.net = nn.Sequential(nn.Linear(d, d), nn.GELU(), nn.Dropout(dropout), nn.Linear(d, d), nn.Dropout(dropout))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


class AttentionBlock(nn.Module):
    """Pre-norm multi-head self-attention and feed-forward, each with a residual."""

    def __init__(self, d: int, heads: int, dropout: float):
        super().__init__()
        self.heads = heads
        self.norm1 = nn.LayerNorm(d)
        self.qkv = nn.Linear(d, 3 * d)
        self.proj = nn.Linear(d, d)
        self.norm2 = nn.LayerNorm(d)
        self.ffn = FeedForward(d, dropout)
        self.dropout = nn.Dropout(dropout)
        self.attn_dropout = dropout

    def forward(self, x: torch.Tensor, allowed: torch.Tensor | None, at: torch.Tensor | None = None) -> torch.Tensor:
        """[B, T, d] outputs; with ``at`` [B] only each row's output at that position, [B, 1, d]: keys and
        values still come from every position, queries and the feed-forward from that one alone."""
        b, t, d = x.shape
        heads, width = self.heads, d // self.heads
        h = self.norm1(x)
        if at is None:
            q, k, v = self.qkv(h).view(b, t, 3, heads, width).permute(2, 0, 3, 1, 4)
        else:  # the qkv weight's rows are q's, then k's, then v's
            rows = torch.arange(b, device=x.device)
            w_q, w_kv = self.qkv.weight.split([d, 2 * d])
            b_q, b_kv = self.qkv.bias.split([d, 2 * d])
            k, v = F.linear(h, w_kv, b_kv).view(b, t, 2, heads, width).permute(2, 0, 3, 1, 4)
            q = F.linear(h[rows, at], w_q, b_q).view(b, 1, heads, width).transpose(1, 2)
            allowed = None if allowed is None else allowed[rows, :, at].unsqueeze(2)
            x = x[rows, at].unsqueeze(1)
        attn = self._attend(q, k, v, allowed)
        x = x + self.dropout(self.proj(attn.transpose(1, 2).reshape(b, -1, d)))
        return x + self.ffn(self.norm2(x))

    def _attend(self, q, k, v, allowed):
        p = self.attn_dropout if self.training else 0.0
        if q.is_cuda:
            return F.scaled_dot_product_attention(q, k, v, attn_mask=allowed, dropout_p=p)
        # On CPUs the fused kernel measured about 2x slower than this for short sequences.
        scores = (q @ k.transpose(-1, -2)) * q.shape[-1] ** -0.5
        if allowed is not None:
            scores = scores.masked_fill(~allowed, -float("inf"))
        return F.dropout(scores.softmax(-1), p, self.training) @ v


class SelfAttentionEncoder(nn.Module):
    """SASRec / Bert4Rec encoder: positions, attention blocks, final LayerNorm.

    Inputs: ``x`` [B, T, d] item embeddings, ``lengths`` [B]. Output [B, T, d].
    """

    def __init__(
        self,
        d: int,
        layers: int,
        heads: int,
        dropout: float,
        max_length: int,
        causal: bool,
        reference_padding: bool = False,
    ):
        super().__init__()
        self.causal = causal
        self.reference_padding = reference_padding
        self.positions = skip_init(nn.Embedding, max_length + 1, d)  # the default init's draws depend on the size
        init_positions(self.positions.weight)
        self.dropout = nn.Dropout(dropout)
        self.blocks = nn.ModuleList(AttentionBlock(d, heads, dropout) for _ in range(layers))
        self.norm = nn.LayerNorm(d)

    def forward(self, x: torch.Tensor, lengths: torch.Tensor, at: torch.Tensor | None = None) -> torch.Tensor:
        """[B, T, d]; with ``at`` [B], only each row's output at that position, [B, d] (what ranking
        reads: the last block then computes one query a row, about a third less work at two blocks)."""
        b, t, _ = x.shape
        valid = valid_mask(lengths, t, self.reference_padding)
        x = self.dropout(x + self.positions(self._position_ids(lengths, t)))
        allowed = self._attention_mask(valid)
        for i, block in enumerate(self.blocks):
            x = block(x, allowed, at if i == len(self.blocks) - 1 else None)
        if at is not None:
            x = x.squeeze(1) if self.blocks else x[torch.arange(b, device=x.device), at]
        return self.norm(x)

    def _position_ids(self, lengths: torch.Tensor, t: int) -> torch.Tensor:
        steps = torch.arange(t, device=lengths.device).unsqueeze(0).expand(len(lengths), t)
        if self.reference_padding:
            return steps  # absolute positions over the fixed, left-padded width
        # Count back from the most recent item (position 0), so padding cannot shift positions.
        return (lengths.unsqueeze(1) - 1 - steps).clamp_min(0)

    def _attention_mask(self, valid: torch.Tensor) -> torch.Tensor | None:
        """[B, 1, T, T] True where a query may attend to a key."""
        t = valid.shape[1]
        allowed = None
        if not self.reference_padding:
            allowed = valid.unsqueeze(1).unsqueeze(2).expand(-1, 1, t, -1)
        if self.causal:
            causal = torch.ones(t, t, dtype=torch.bool, device=valid.device).tril()
            allowed = causal.expand(valid.shape[0], 1, t, t) if allowed is None else allowed & causal
        if allowed is not None:
            # A padding query may see nothing; let it see itself so softmax stays finite.
            allowed = allowed | torch.eye(t, dtype=torch.bool, device=valid.device)
        return allowed


def _encoder(seq, causal: bool) -> SelfAttentionEncoder:
    return SelfAttentionEncoder(
        seq.hidden_size, seq.num_layers, seq.num_heads, seq.dropout, seq.max_length, causal, seq.reference_padding
    )


register(
    "sasrec",
    BackboneSpec(
        encoder=lambda seq: _encoder(seq, seq.causal),
        scheme=lambda seq, mask_id: NextItems(),
        paper="Self-Attentive Sequential Recommendation (ICDM 2018)",
        causal=lambda seq: seq.causal,
        reads_one_position=True,
    ),
)
register(
    "bert4rec",
    BackboneSpec(
        encoder=lambda seq: _encoder(seq, False),
        scheme=lambda seq, mask_id: MaskedItems(seq.mask_prob, mask_id),
        paper="BERT4Rec: Sequential Recommendation with Bidirectional Encoder Representations from Transformer "
        "(CIKM 2019)",
        reads_one_position=True,
    ),
)
