"""Contrastive objectives: two-view InfoNCE (exact or in-batch negatives) and an item-attribute link term.

The InfoNCE of two views ``z1, z2 [n, d]`` is the symmetric loss over the
``2n`` rows of ``Z = [z1; z2]`` (rows L2-normalised):

    loss = 1/(2n) * sum_i [ logsumexp_{k != i}(Z_i . Z_k / tau) - Z_i . Z_partner(i) / tau ]

With ``exact`` negatives every other item of both views is a negative, as in
two-view graph contrastive learning. ``in-batch`` negatives apply the same
loss within shuffled item batches of size B: cost O(n x B); with B >= n the
two are the same. A custom autograd function computes the scores in tiles;
forward keeps ``Z`` and one log-sum-exp per row, and backward recomputes each
tile (exact: memory O(block x n), never O(n^2)) or reuses the tiles when all
of them fit in KEEP_SCORES elements (in-batch at catalogue scale).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from ..graph.edges import Relation
from .tensors import GraphTensors

# Score-matrix elements materialised at once: 4 MiB of float32 on a CPU, where the
# allocator reuses blocks this small instead of faulting in fresh pages on every call
# (256 MiB tiles made the loss 2.3x slower); 256 MiB on a GPU.
SCORE_BLOCK = {"cpu": 1 << 20, "cuda": 1 << 26}
# Score elements kept from forward for backward, at most (512 MiB of float32).
KEEP_SCORES = 1 << 27


def info_nce(
    z1: torch.Tensor, z2: torch.Tensor, tau: float, negatives: str = "in-batch", batch_size: int = 1024
) -> torch.Tensor:
    """Symmetric InfoNCE between two views ``z1, z2 [n, d]`` -> scalar (mean over the 2n rows)."""
    z1, z2 = F.normalize(z1, dim=1), F.normalize(z2, dim=1)
    n = z1.shape[0]
    if negatives == "exact" or n <= batch_size:
        return contrastive_sum(torch.cat([z1, z2]).unsqueeze(0), tau, batch_size) / (2 * n)
    if negatives != "in-batch":
        raise ValueError(f"unknown negatives mode {negatives!r}")
    order = torch.randperm(n, device=z1.device)
    full = n // batch_size * batch_size
    batches = order[:full].view(-1, batch_size)  # [G, B]
    total = contrastive_sum(torch.cat([z1[batches], z2[batches]], dim=1), tau, 2 * batch_size)
    if full < n:
        rest = order[full:]
        total = total + contrastive_sum(torch.cat([z1[rest], z2[rest]]).unsqueeze(0), tau, batch_size)
    return total / (2 * n)


def contrastive_sum(z: torch.Tensor, tau: float, rows_per_block: int) -> torch.Tensor:
    """``z [G, m, d]``: G independent groups of m = 2b unit rows, row i paired with row (i + b) mod m.

    Returns the sum over all groups and rows of
    ``logsumexp_{k != i}(z_i . z_k / tau) - z_i . z_partner(i) / tau`` (a scalar).
    """
    if z.shape[1] % 2:
        raise ValueError("each group must hold the two views of the same items (an even number of rows)")
    return _ContrastiveSum.apply(z, float(tau), int(rows_per_block))


def _tiles(groups: int, rows: int, width: int, rows_per_block: int, device: torch.device):
    """(group slice, row slice) tiles whose score blocks [g, r, width] stay under SCORE_BLOCK elements."""
    budget = SCORE_BLOCK.get(device.type, SCORE_BLOCK["cpu"])
    r = max(1, min(rows, rows_per_block, budget // max(width, 1)))
    g = max(1, min(groups, budget // max(r * width, 1)))
    for g0 in range(0, groups, g):
        for r0 in range(0, rows, r):
            yield slice(g0, min(g0 + g, groups)), slice(r0, min(r0 + r, rows))


def _block_scores(z: torch.Tensor, gs: slice, rs: slice, tau: float) -> torch.Tensor:
    """Scores ``[g, r, m]`` of rows ``rs`` against every row of their group, self scores at -inf."""
    scores = torch.matmul(z[gs, rs] / tau, z[gs].transpose(1, 2))
    local = torch.arange(rs.stop - rs.start, device=z.device)
    scores[:, local, local + rs.start] = float("-inf")
    return scores


def _fixed_shift(tau: float) -> float | None:
    """Scores of unit rows lie in [-1/tau, 1/tau], so exp(score - 1/tau) lies in [exp(-2/tau), 1]:
    a fixed shift is safe from overflow, and from underflow to zero while 2/tau <= 80."""
    return 1.0 / tau if 2.0 / tau <= 80.0 else None


class _ContrastiveSum(torch.autograd.Function):
    """Forward keeps one log-sum-exp per row; backward uses that the scores are symmetric.

    d/dz_i of sum_j lse_j is sum_k (P_ik + P_ki) z_k / tau with P_jk = exp(s_jk - lse_j).
    Because s_ki = s_ik, the tile of rows ``rs`` yields both terms from one score tile.
    With a fixed shift c (see ``_fixed_shift``) and e = exp(s - c), both are scalings of e:
    P_ik + P_ki = e_ik (r_i + r_k) with r = exp(c - lse), so the tile's gradient is one
    product ``e @ [z, r * z]`` and backward needs no exp at all. Tiles are kept from
    forward when they fit in KEEP_SCORES elements (in-batch negatives) and recomputed
    otherwise (exact negatives: O(block x n) memory).
    """

    @staticmethod
    def forward(ctx, z, tau, rows_per_block):
        groups, m, _ = z.shape
        shift = _fixed_shift(tau)
        lse = z.new_empty(groups, m)
        tiles = list(_tiles(groups, m, m, rows_per_block, z.device))
        keep = groups * m * m <= KEEP_SCORES
        kept = []
        for gs, rs in tiles:
            scores = _block_scores(z, gs, rs, tau)
            if shift is None:
                lse[gs, rs] = torch.logsumexp(scores, dim=-1)
            else:
                scores = scores.sub_(shift).exp_()
                lse[gs, rs] = scores.sum(-1).log_().add_(shift)
            if keep:
                kept.append(scores)
        positive = (z * z.roll(m // 2, dims=1)).sum(-1) / tau
        ctx.save_for_backward(z, lse)
        ctx.tau, ctx.shift, ctx.tiles, ctx.kept = tau, shift, tiles, kept if keep else None
        return (lse - positive).sum()

    @staticmethod
    def backward(ctx, grad_out):
        z, lse = ctx.saved_tensors
        tau, shift, kept = ctx.tau, ctx.shift, ctx.kept
        grad = torch.empty_like(z)
        if shift is not None:
            scale = torch.exp(shift - lse)  # r
            paired = torch.cat([z, scale.unsqueeze(-1) * z], dim=-1)  # [G, m, 2d]
        for t, (gs, rs) in enumerate(ctx.tiles):
            scores = kept[t] if kept is not None else _block_scores(z, gs, rs, tau)
            if shift is None:
                weights = torch.exp(scores - lse[gs, rs].unsqueeze(-1))
                weights += scores.sub_(lse[gs].unsqueeze(1)).exp_()
                grad[gs, rs] = torch.matmul(weights, z[gs])
            else:
                if kept is None:
                    scores = scores.sub_(shift).exp_()
                both = torch.matmul(scores, paired[gs])  # [g, r, 2d]
                d = z.shape[-1]
                grad[gs, rs] = both[..., :d] * scale[gs, rs].unsqueeze(-1) + both[..., d:]
        ctx.kept = None
        # Each positive pair appears in the rows of both its members.
        grad -= 2 * z.roll(z.shape[1] // 2, dims=1)
        return grad * (grad_out / tau), None, None


def item_attribute_relations(relations: list[Relation]) -> list[Relation]:
    return [r for r in relations if r[0] == "item" and r[2] != "item"]


def link_loss(h: dict[str, torch.Tensor], graph: GraphTensors, samples: int, tau: float) -> torch.Tensor:
    """Binary cross-entropy of item-attribute links against randomly re-wired attributes.

    ``h``: node type -> ``[N_t, d]`` encoder outputs; positives are ``samples``
    edges drawn per item -> attribute relation of ``graph`` (the un-augmented
    one, so a view must also recover the edges it dropped); each positive gets
    one negative with a uniformly drawn attribute. Logits are cosine / tau.
    """
    terms = []
    for rel in item_attribute_relations(graph.relations()):
        src, dst = graph.edges[rel]
        if src.numel() == 0:
            continue
        pick = torch.randint(src.numel(), (samples,), device=src.device)
        items = F.normalize(h["item"][src[pick]], dim=1)
        attrs = F.normalize(h[rel[2]], dim=1)
        negative = torch.randint(attrs.shape[0], (samples,), device=src.device)
        pos = (items * attrs[dst[pick]]).sum(1) / tau
        neg = (items * attrs[negative]).sum(1) / tau
        terms.append(
            F.binary_cross_entropy_with_logits(pos, torch.ones_like(pos))
            + F.binary_cross_entropy_with_logits(neg, torch.zeros_like(neg))
        )
    if not terms:
        return next(iter(h.values())).new_zeros(())
    return torch.stack(terms).mean()
