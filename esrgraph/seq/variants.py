"""The recommender's variants (``seq.variant``): which item views a model has and whether it self-distils.

* ``plain``: the backbone with item-id embeddings only, randomly initialised;
* ``dual-view``: LLM-ESR's semantic view (frozen LLM item embeddings through an
  adapter) beside the collaborative view (id embeddings initialised with the
  PCA of the LLM embeddings), without self-distillation;
* ``llmesr``: the full LLM-ESR model, with retrieval-augmented self-distillation;
* ``text-init``: the collaborative view alone, its id embeddings started at the
  PCA of the LLM embeddings: what the text gives through the start alone.
"""

from __future__ import annotations

from dataclasses import dataclass

from .registry import VARIANTS


@dataclass(frozen=True)
class VariantSpec:
    text: bool  # PCA-initialised ids: reads the embed stage
    semantic: bool  # the semantic view (frozen LLM item embeddings through an adapter) beside the ids
    distills: bool  # self-distillation from similar users (reads the similar users)
    help: str

    def __post_init__(self):
        assert self.text or not self.semantic, "the semantic view reads the embed stage"


def variant_spec(seq) -> VariantSpec:
    """The spec of the configured ``seq.variant``."""
    return VARIANTS.get(seq.variant, "seq.variant")


def distills(seq) -> bool:
    """Whether the configured model trains with self-distillation (its variant does, with a weight α > 0)."""
    return variant_spec(seq).distills and seq.distill.alpha > 0


VARIANTS.register("plain", VariantSpec(text=False, semantic=False, distills=False, help="id embeddings only"))
VARIANTS.register(
    "dual-view", VariantSpec(text=True, semantic=True, distills=False, help="LLM-ESR without self-distillation")
)
VARIANTS.register("llmesr", VariantSpec(text=True, semantic=True, distills=True, help="the full LLM-ESR model"))
VARIANTS.register(
    "text-init",
    VariantSpec(text=True, semantic=False, distills=False, help="id embeddings only, started at the LLM PCA"),
)
