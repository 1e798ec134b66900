"""Sequence encoders shared by every recommender.

* :class:`SelfAttentionEncoder` — SASRec ("Self-Attentive Sequential
  Recommendation", ICDM 2018) when causal, Bert4Rec (CIKM 2019) when
  bidirectional.
* :class:`GRUEncoder` — GRU4Rec ("Session-based Recommendations with
  Recurrent Neural Networks", ICLR 2016).

Both map item embeddings ``x`` [B, T, d] and ``lengths`` [B] to outputs
[B, T, d]. Padding never changes the outputs at real positions: it is masked
out of attention and skipped by the GRU, and positions count back from each
sequence's most recent item, so results do not depend on how much padding a
batch carries or on ``max_length``.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils import skip_init


def valid_mask(lengths: torch.Tensor, width: int, reference_padding: bool) -> torch.Tensor:
    """[B, T] True at real (non-padding) positions."""
    positions = torch.arange(width, device=lengths.device)
    if reference_padding:
        return positions.unsqueeze(0) >= (width - lengths).unsqueeze(1)
    return positions.unsqueeze(0) < lengths.unsqueeze(1)


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

    def forward(self, x: torch.Tensor, allowed: torch.Tensor | None) -> torch.Tensor:
        b, t, d = x.shape
        q, k, v = self.qkv(self.norm1(x)).view(b, t, 3, self.heads, d // self.heads).permute(2, 0, 3, 1, 4)
        attn = self._attend(q, k, v, allowed)
        x = x + self.dropout(self.proj(attn.transpose(1, 2).reshape(b, t, d)))
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
        _init_positions(self.positions.weight)
        self.dropout = nn.Dropout(dropout)
        self.blocks = nn.ModuleList(AttentionBlock(d, heads, dropout) for _ in range(layers))
        self.norm = nn.LayerNorm(d)

    def forward(self, x: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        b, t, _ = x.shape
        valid = valid_mask(lengths, t, self.reference_padding)
        x = self.dropout(x + self.positions(self._position_ids(lengths, t)))
        allowed = self._attention_mask(valid)
        for block in self.blocks:
            x = block(x, allowed)
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


@torch.no_grad()
def _init_positions(weight: torch.Tensor) -> None:
    """N(0, 0.02²) rows, each from its own generator, so a position's row and every draw after the
    table are the same whatever ``max_length`` is: results then do not change with it.

    Same scale as the item embeddings: a default N(0, 1) table would drown the items' signal
    and leave the model little but position.
    """
    base = int(torch.randint(0, 2**31, ()))  # one draw from the global stream, whatever the size
    for row, values in enumerate(weight):
        values.normal_(0.0, 0.02, generator=torch.Generator().manual_seed((base << 20) + row))


class GRUEncoder(nn.Module):
    """GRU4Rec encoder. Inputs ``x`` [B, T, d], ``lengths`` [B]; output [B, T, d] (zeros at padding)."""

    def __init__(self, d: int, layers: int, dropout: float, reference_padding: bool = False):
        super().__init__()
        self.reference_padding = reference_padding
        self.dropout = nn.Dropout(dropout)
        self.gru = nn.GRU(d, d, num_layers=layers, batch_first=True, dropout=dropout if layers > 1 else 0.0)
        self.norm = nn.LayerNorm(d)

    def forward(self, x: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        x = self.dropout(x)
        if self.reference_padding:
            out, _ = self.gru(x)  # the reference runs the GRU over the left padding too
            return self.norm(out)
        packed = nn.utils.rnn.pack_padded_sequence(
            x, lengths.clamp_min(1).cpu(), batch_first=True, enforce_sorted=False
        )
        out, _ = self.gru(packed)
        out, _ = nn.utils.rnn.pad_packed_sequence(out, batch_first=True, total_length=x.shape[1])
        return self.norm(out)


def build_backbone(
    name: str, d: int, layers: int, heads: int, dropout: float, max_length: int, causal: bool, reference_padding: bool
) -> nn.Module:
    if name == "gru4rec":
        return GRUEncoder(d, layers, dropout, reference_padding)
    # Bert4Rec reads the whole sequence in both directions.
    return SelfAttentionEncoder(d, layers, heads, dropout, max_length, causal and name == "sasrec", reference_padding)
