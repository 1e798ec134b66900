"""The contrastive model: encoder + projection head, and the loss of one training step.

Two augmented views of the graph (edge dropping, feature masking), a projection
head and a symmetric InfoNCE between the views, as in "Deep Graph Contrastive
Representation Learning" (GRACE, 2020). A mini-batch step does the same on the
sampled neighbourhood of a batch of seed items, with the loss over the seeds.
"""

from __future__ import annotations

import torch
from torch import nn

from .augment import drop_edges, feature_masks
from .blocks import Block, drop_block_edges
from .config import GnnConfig
from .encoder import ITEM, GraphEncoder, ProjectionHead
from .loss import info_nce, link_loss
from .tensors import GraphTensors


def build_encoder(
    cfg: GnnConfig, graph: GraphTensors, backend: str, features: dict[str, torch.Tensor] | None = None
) -> GraphEncoder:
    return GraphEncoder(
        graph.num_nodes,
        graph.relations(),
        dim=cfg.hidden,
        layers=cfg.layers,
        heads=cfg.heads,
        combine=cfg.combine,
        feat_drop=cfg.feat_drop,
        attn_drop=cfg.attn_drop,
        negative_slope=cfg.negative_slope,
        features=features,
        backend=backend,
    )


class ContrastiveModel(nn.Module):
    """Encoder and projection head; :meth:`loss` is one two-view step on ``graph``,
    :meth:`batch_loss` one on a batch's sampled blocks.

    Items 1..N enter the loss; node 0 (the padding item) never does.
    """

    def __init__(self, encoder: GraphEncoder, projection: int):
        super().__init__()
        self.encoder = encoder
        self.head = ProjectionHead(encoder.dim, projection)

    def views(self, graph: GraphTensors, cfg: GnnConfig) -> list[dict[str, torch.Tensor]]:
        """Encoder outputs (type -> ``[N_t, dim]``) of the two augmented views."""
        dims = self.encoder.inputs.input_dims()
        outputs = None if cfg.link_weight > 0 else {ITEM}  # the link term also reads attribute nodes
        out = []
        for view in (cfg.view1, cfg.view2):
            dropped = drop_edges(graph, view.edge_drop)
            masks = feature_masks(dims, view.feature_mask, graph.device)
            out.append(self.encoder(dropped, masks, outputs))
        return out

    def loss(self, graph: GraphTensors, cfg: GnnConfig) -> torch.Tensor:
        h1, h2 = self.views(graph, cfg)
        z1, z2 = self.head(h1[ITEM][1:]), self.head(h2[ITEM][1:])
        loss = info_nce(z1, z2, cfg.tau, cfg.negatives, cfg.batch_size)
        if cfg.link_weight > 0:
            link = (
                link_loss(h1, graph, cfg.link_samples, cfg.tau) + link_loss(h2, graph, cfg.link_samples, cfg.tau)
            ) / 2
            loss = loss + cfg.link_weight * link
        return loss

    def block_views(self, blocks: list[Block], cfg: GnnConfig, generator: torch.Generator) -> list[torch.Tensor]:
        """The seed items' encodings ``[B, dim]`` in the two views of their sampled neighbourhood."""
        dims = self.encoder.inputs.input_dims()
        device = blocks[0].dst_nodes(ITEM).device
        out = []
        for view in (cfg.view1, cfg.view2):
            dropped = drop_block_edges(blocks, view.edge_drop, generator)
            masks = feature_masks(dims, view.feature_mask, device, generator)
            out.append(self.encoder.forward_blocks(dropped, masks, {ITEM})[ITEM])
        return out

    def batch_loss(self, blocks: list[Block], cfg: GnnConfig, generator: torch.Generator) -> torch.Tensor:
        """InfoNCE between the views over the seed items of ``blocks`` (the other seeds: the negatives).

        The augmentations draw from ``generator``. With every neighbour, no
        augmentation and every item a seed, this is :meth:`loss` on the whole graph.
        """
        h1, h2 = self.block_views(blocks, cfg, generator)
        return info_nce(self.head(h1), self.head(h2), cfg.tau, cfg.negatives, cfg.batch_size)
