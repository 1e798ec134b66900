"""GAT message passing in plain PyTorch over edge-index tensors: runs on any device torch supports.

Three primitives, the same ones the DGL path takes from ``dgl.ops``:

- :func:`u_add_v` — per edge, the source score plus the destination score;
- :func:`edge_softmax` — softmax of edge scores over each destination's incoming edges;
- :func:`u_mul_e_sum` — each destination's sum of its sources' features weighted per edge.

No Python loop runs over edges or nodes; the weighted sum walks the edges in
large blocks only to bound the memory of the per-edge messages, and its
backward recomputes them instead of keeping ``E x H x F`` activations alive.
"""

from __future__ import annotations

import math

import torch

# Per-edge message elements materialised at once in u_mul_e_sum (256 MiB of float32).
MESSAGE_BLOCK = 1 << 26


def u_add_v(src_scores: torch.Tensor, dst_scores: torch.Tensor, src: torch.Tensor, dst: torch.Tensor) -> torch.Tensor:
    """``src_scores [Ns, H]``, ``dst_scores [Nd, H]``, edges ``src, dst [E]`` -> ``[E, H]``."""
    return src_scores.index_select(0, src) + dst_scores.index_select(0, dst)


def edge_softmax(logits: torch.Tensor, dst: torch.Tensor, num_dst: int) -> torch.Tensor:
    """Softmax of ``logits [E, H]`` over the edges that share a destination -> ``[E, H]``.

    The per-destination maximum is subtracted for stability. Backward keeps
    only the output: ``grad_logits = a * (g - sum over the destination of a * g)``.
    """
    return _EdgeSoftmax.apply(logits, dst, num_dst)


def _segment_sum(values: torch.Tensor, dst: torch.Tensor, num_dst: int) -> torch.Tensor:
    return values.new_zeros((num_dst,) + tuple(values.shape[1:])).index_add_(0, dst, values)


class _EdgeSoftmax(torch.autograd.Function):
    @staticmethod
    def forward(ctx, logits, dst, num_dst):
        index = dst.view((-1,) + (1,) * (logits.dim() - 1)).expand_as(logits)
        shape = (num_dst,) + tuple(logits.shape[1:])
        peak = logits.new_full(shape, float("-inf")).scatter_reduce_(0, index, logits, "amax")
        scores = torch.exp(logits - peak.index_select(0, dst))
        scores /= _segment_sum(scores, dst, num_dst).index_select(0, dst)
        ctx.save_for_backward(scores, dst)
        ctx.num_dst = num_dst
        return scores

    @staticmethod
    def backward(ctx, grad_out):
        scores, dst = ctx.saved_tensors
        weighted = scores * grad_out
        return weighted - scores * _segment_sum(weighted, dst, ctx.num_dst).index_select(0, dst), None, None


def u_mul_e_sum(
    x: torch.Tensor, weights: torch.Tensor, src: torch.Tensor, dst: torch.Tensor, num_dst: int
) -> torch.Tensor:
    """``out[v] = sum over edges (u -> v) of weights[e] * x[u]``.

    ``x [Ns, H, F]``, ``weights [E, H]``, ``src, dst [E]`` -> ``[num_dst, H, F]``.
    """
    return _WeightedNeighbourSum.apply(x, weights, src, dst, num_dst)


def _blocks(num_edges: int, per_edge: int):
    step = max(1, MESSAGE_BLOCK // max(per_edge, 1))
    for start in range(0, num_edges, step):
        yield slice(start, min(start + step, num_edges))


class _WeightedNeighbourSum(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, weights, src, dst, num_dst):
        ctx.save_for_backward(x, weights, src, dst)
        out = x.new_zeros((num_dst,) + tuple(x.shape[1:]))
        for part in _blocks(src.numel(), math.prod(x.shape[1:])):
            messages = x.index_select(0, src[part]) * weights[part].unsqueeze(-1)
            out.index_add_(0, dst[part], messages)
        return out

    @staticmethod
    def backward(ctx, grad_out):
        x, weights, src, dst = ctx.saved_tensors
        grad_x = torch.zeros_like(x) if ctx.needs_input_grad[0] else None
        grad_w = torch.empty_like(weights) if ctx.needs_input_grad[1] else None
        grad_out = grad_out.contiguous()
        for part in _blocks(src.numel(), math.prod(x.shape[1:])):
            upstream = grad_out.index_select(0, dst[part])  # [e, H, F]
            if grad_x is not None:
                grad_x.index_add_(0, src[part], upstream * weights[part].unsqueeze(-1))
            if grad_w is not None:
                grad_w[part] = (upstream * x.index_select(0, src[part])).sum(-1)
        return grad_x, grad_w, None, None, None


class NativeOps:
    """The three primitives bound to one graph's edge tensors (a :class:`GraphTensors`, or a sampled ``Block``
    whose Nd output nodes are the first of its Ns input nodes).

    For relation ``rel = (src_type, name, dst_type)`` with E edges:
    ``u_add_v(rel, [Ns, H], [Nd, H]) -> [E, H]``; ``edge_softmax(rel, [E, H]) -> [E, H]``;
    ``u_mul_e_sum(rel, x [Ns, H, F], weights [E, H]) -> [Nd, H, F]``.
    """

    name = "native"

    def __init__(self, graph):
        self.graph = graph

    def num_dst(self, node_type: str) -> int:
        return self.graph.num_dst_nodes(node_type)

    def u_add_v(self, rel, src_scores: torch.Tensor, dst_scores: torch.Tensor) -> torch.Tensor:
        src, dst = self.graph.edges[rel]
        return u_add_v(src_scores, dst_scores, src, dst)

    def edge_softmax(self, rel, logits: torch.Tensor) -> torch.Tensor:
        _, dst = self.graph.edges[rel]
        return edge_softmax(logits, dst, self.num_dst(rel[2]))

    def u_mul_e_sum(self, rel, x: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
        src, dst = self.graph.edges[rel]
        return u_mul_e_sum(x, weights, src, dst, self.num_dst(rel[2]))
