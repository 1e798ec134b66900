"""What a backbone declares when it registers, and the helpers every encoder shares.

An encoder maps item inputs ``x`` [B, T, d] and ``lengths`` [B] to outputs
[B, T, d]. Its :class:`BackboneSpec` tells the rest of the code everything it
needs to know about it, so nothing else asks for its name: the training
scheme it needs (:mod:`..schemes`), whether it reads a fixed window of
``max_length`` positions, left-padded, and whether item inputs enter it
scaled by √d.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import nn

from ..registry import BACKBONES
from ..schemes import TrainingScheme


@dataclass(frozen=True)
class BackboneSpec:
    encoder: Callable[..., nn.Module]  # seq config -> encoder
    scheme: Callable[..., TrainingScheme]  # (seq config, mask token id) -> its training scheme
    paper: str
    window: bool = False  # reads a fixed window of max_length positions, left-padded, whatever the history lengths
    scale_inputs: bool = True  # item inputs enter scaled by √d
    causal: Callable[..., bool] = lambda seq: False  # outputs read only earlier positions (cross-attention follows)
    # encoder(x, lengths, at=[B]) computes only each row's output at ``at``, [B, d] (ranking reads no other)
    reads_one_position: bool = False


def register(name: str, spec: BackboneSpec) -> BackboneSpec:
    return BACKBONES.register(name, spec)


def backbone_spec(seq) -> BackboneSpec:
    """The spec of the configured ``seq.backbone``."""
    return BACKBONES.get(seq.backbone, "seq.backbone")


def left_padded(seq) -> bool:
    """Whether sequences are left-padded to ``max_length`` (the reference layout, or a windowed backbone)."""
    return seq.reference_padding or backbone_spec(seq).window


def valid_mask(lengths: torch.Tensor, width: int, left_pad: bool) -> torch.Tensor:
    """[B, T] True at real (non-padding) positions."""
    positions = torch.arange(width, device=lengths.device)
    if left_pad:
        return positions.unsqueeze(0) >= (width - lengths).unsqueeze(1)
    return positions.unsqueeze(0) < lengths.unsqueeze(1)


@torch.no_grad()
def init_positions(weight: torch.Tensor) -> None:
    """N(0, 0.02²) rows, each from its own generator, so a position's row and every draw after the
    table are the same whatever ``max_length`` is: results then do not change with it.

    Same scale as the item embeddings: a default N(0, 1) table would drown the items' signal
    and leave the model little but position.
    """
    base = int(torch.randint(0, 2**31, ()))  # one draw from the global stream, whatever the size
    for row, values in enumerate(weight):
        values.normal_(0.0, 0.02, generator=torch.Generator().manual_seed((base << 20) + row))
