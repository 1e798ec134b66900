"""GRU4Rec ("Session-based Recommendations with Recurrent Neural Networks", ICLR 2016).

Inputs ``x`` [B, T, d] and ``lengths`` [B]; outputs [B, T, d] (zeros at padding):
the GRU skips padding, so outputs do not depend on how much a batch carries.
"""

from __future__ import annotations

import torch
from torch import nn

from ..schemes import NextItems
from .base import BackboneSpec, register


class GRUEncoder(nn.Module):
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


register(
    "gru4rec",
    BackboneSpec(
        encoder=lambda seq: GRUEncoder(seq.hidden_size, seq.num_layers, seq.dropout, seq.reference_padding),
        scheme=lambda seq, mask_id: NextItems(),
        paper="Session-based Recommendations with Recurrent Neural Networks (ICLR 2016)",
        causal=lambda seq: True,
    ),
)
