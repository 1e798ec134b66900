"""BSARec ("An Attentive Inductive Bias for Sequential Recommendation beyond the Self-Attention", AAAI 2024).

Each layer mixes two branches that read the same input ``X`` [B, T, d], each
with its own residual and LayerNorm:

* a frequency branch: ``X`` split by a Fourier transform along the sequence
  into its lowest ``c // 2 + 1`` frequencies (LPF) and the rest (HPF = X − LPF);
  the high frequencies are rescaled per channel by a learned β ≥ 0:
  ``F = LN(X + Dropout(LPF(X) + β ⊙ HPF(X)))``;
* causal multi-head self-attention: ``A = LN(X + Dropout(Dense(MHA(X))))``;

``H = α F + (1 − α) A``, then a feed-forward block ``LN(H + Dropout(FFN(H)))``
(4d, GELU). Inputs enter as ``Dropout(LN(items + positions))`` with absolute
positions over a fixed window of ``seq.max_length`` slots, left-padded (the
paper: 50). The Fourier transform reads the whole window, so an output sees
later positions: the model trains on prefixes, each predicting its next item
from its last slot (:class:`~..schemes.Prefixes`).

Shapes: ``x`` [B, T, d] (T = ``max_length``), ``lengths`` [B]; output [B, T, d].
"""

from __future__ import annotations

import torch
from torch import nn

from ..schemes import Prefixes
from .base import BackboneSpec, init_positions, register, valid_mask

EPS = 1e-12  # LayerNorm epsilon of the published model


class FrequencyBranch(nn.Module):
    """``LN(X + Dropout(LPF(X) + β ⊙ HPF(X)))`` with the ``c // 2 + 1`` lowest frequencies kept in LPF."""

    def __init__(self, d: int, cutoff: int, dropout: float):
        super().__init__()
        self.keep = cutoff // 2 + 1
        self.sqrt_beta = nn.Parameter(torch.randn(1, 1, d))
        self.dropout = nn.Dropout(dropout)
        self.norm = nn.LayerNorm(d, eps=EPS)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        spectrum = torch.fft.rfft(x.float(), dim=1, norm="ortho")
        spectrum[:, self.keep :] = 0
        low = torch.fft.irfft(spectrum, n=x.shape[1], dim=1, norm="ortho").to(x.dtype)
        return self.norm(x + self.dropout(low + self.sqrt_beta**2 * (x - low)))


class AttentionBranch(nn.Module):
    """``LN(X + Dropout(Dense(MHA(X))))``; ``bias`` [B, 1, T, T] is added to the attention scores."""

    def __init__(self, d: int, heads: int, dropout: float):
        super().__init__()
        self.heads = heads
        self.qkv = nn.Linear(d, 3 * d)
        self.dense = nn.Linear(d, d)
        self.attn_dropout = nn.Dropout(dropout)
        self.dropout = nn.Dropout(dropout)
        self.norm = nn.LayerNorm(d, eps=EPS)

    def forward(self, x: torch.Tensor, bias: torch.Tensor) -> torch.Tensor:
        b, t, d = x.shape
        q, k, v = self.qkv(x).view(b, t, 3, self.heads, d // self.heads).permute(2, 0, 3, 1, 4)
        scores = (q @ k.transpose(-1, -2)) * (d // self.heads) ** -0.5 + bias
        mixed = self.attn_dropout(scores.softmax(-1)) @ v
        return self.norm(x + self.dropout(self.dense(mixed.transpose(1, 2).reshape(b, t, d))))


class BSARecLayer(nn.Module):
    def __init__(self, d: int, heads: int, dropout: float, alpha: float, cutoff: int):
        super().__init__()
        self.alpha = alpha
        self.frequency = FrequencyBranch(d, cutoff, dropout)
        self.attention = AttentionBranch(d, heads, dropout)
        self.ffn = nn.Sequential(nn.Linear(d, 4 * d), nn.GELU(), nn.Linear(4 * d, d), nn.Dropout(dropout))
        self.norm = nn.LayerNorm(d, eps=EPS)

    def forward(self, x: torch.Tensor, bias: torch.Tensor) -> torch.Tensor:
        h = self.alpha * self.frequency(x) + (1 - self.alpha) * self.attention(x, bias)
        return self.norm(h + self.ffn(h))


class BSARecEncoder(nn.Module):
    def __init__(self, d: int, layers: int, heads: int, dropout: float, max_length: int, alpha: float, cutoff: int):
        super().__init__()
        self.positions = nn.utils.skip_init(nn.Embedding, max_length + 1, d)
        init_positions(self.positions.weight)
        self.input_norm = nn.LayerNorm(d, eps=EPS)
        self.dropout = nn.Dropout(dropout)
        self.layers = nn.ModuleList(BSARecLayer(d, heads, dropout, alpha, cutoff) for _ in range(layers))
        for module in self.layers.modules():  # the published initialisation: N(0, 0.02), zero biases
            if isinstance(module, nn.Linear):
                nn.init.normal_(module.weight, std=0.02)
                nn.init.zeros_(module.bias)

    def forward(self, x: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        b, t, _ = x.shape
        steps = torch.arange(t, device=x.device)
        x = self.dropout(self.input_norm(x + self.positions(steps).unsqueeze(0)))
        allowed = valid_mask(lengths, t, left_pad=True).unsqueeze(1) & (steps.unsqueeze(1) >= steps.unsqueeze(0))
        bias = (~allowed).unsqueeze(1).to(x.dtype) * -10000.0  # [B, 1, T, T], as the published model masks
        for layer in self.layers:
            x = layer(x, bias)
        return x


register(
    "bsarec",
    BackboneSpec(
        encoder=lambda seq: BSARecEncoder(
            seq.hidden_size,
            seq.num_layers,
            seq.num_heads,
            seq.dropout,
            seq.max_length,
            seq.bsarec.alpha,
            seq.bsarec.cutoff,
        ),
        scheme=lambda seq, mask_id: Prefixes(),
        paper="An Attentive Inductive Bias for Sequential Recommendation beyond the Self-Attention (AAAI 2024)",
        window=True,
        scale_inputs=False,
    ),
)
