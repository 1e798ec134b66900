"""Sequence encoders. Each module registers its backbones (:data:`~esrgraph.seq.registry.BACKBONES`)
with what the rest of the code needs to know about them (:class:`.base.BackboneSpec`); this
package's import is their registration."""

from . import attention, bsarec, gru4rec  # noqa: F401  (registration)
from .base import BackboneSpec, backbone_spec, left_padded, valid_mask  # noqa: F401
