"""The native message-passing primitives against brute-force loops over edges."""

import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from esrgraph.gnn import native


def random_graph(seed: int, num_src: int, num_dst: int, num_edges: int):
    g = torch.Generator().manual_seed(seed)
    src = torch.randint(num_src, (num_edges,), generator=g)
    dst = torch.randint(num_dst, (num_edges,), generator=g)
    return g, src, dst


def loop_edge_softmax(logits, dst, num_dst):
    out = torch.zeros_like(logits)
    for v in range(num_dst):
        edges = [e for e in range(len(dst)) if dst[e] == v]
        for h in range(logits.shape[1]):
            total = sum(math.exp(logits[e, h]) for e in edges)
            for e in edges:
                out[e, h] = math.exp(logits[e, h]) / total
    return out


def loop_neighbour_sum(x, w, src, dst, num_dst):
    out = torch.zeros((num_dst,) + tuple(x.shape[1:]), dtype=x.dtype)
    for e in range(len(src)):
        out[dst[e]] += w[e].unsqueeze(-1) * x[src[e]]
    return out


graphs = st.tuples(st.integers(0, 10_000), st.integers(1, 7), st.integers(1, 7), st.integers(0, 30), st.integers(1, 3))


@settings(max_examples=30, deadline=None)
@given(graphs)
def test_edge_softmax_matches_loop(case):
    seed, n_src, n_dst, n_edges, heads = case
    g, _, dst = random_graph(seed, n_src, n_dst, n_edges)
    logits = torch.randn(n_edges, heads, generator=g, dtype=torch.float64) * 5
    got = native.edge_softmax(logits, dst, n_dst)
    assert torch.allclose(got, loop_edge_softmax(logits, dst, n_dst), atol=1e-12)
    # every destination with incoming edges sums to one per head
    sums = torch.zeros(n_dst, heads, dtype=torch.float64).index_add_(0, dst, got)
    has_edges = torch.bincount(dst, minlength=n_dst) > 0
    assert torch.allclose(sums[has_edges], torch.ones_like(sums[has_edges]))


@settings(max_examples=30, deadline=None)
@given(graphs)
def test_neighbour_sum_and_gather_match_loops(case):
    seed, n_src, n_dst, n_edges, heads = case
    g, src, dst = random_graph(seed, n_src, n_dst, n_edges)
    x = torch.randn(n_src, heads, 3, generator=g, dtype=torch.float64)
    w = torch.rand(n_edges, heads, generator=g, dtype=torch.float64)
    assert torch.allclose(native.u_mul_e_sum(x, w, src, dst, n_dst), loop_neighbour_sum(x, w, src, dst, n_dst))
    a, b = torch.randn(n_src, heads, generator=g), torch.randn(n_dst, heads, generator=g)
    expected = torch.stack([a[src[e]] + b[dst[e]] for e in range(n_edges)]) if n_edges else torch.zeros(0, heads)
    assert torch.equal(native.u_add_v(a, b, src, dst), expected)


@pytest.mark.parametrize("block", [1 << 26, 7])  # one block, and many small ones
def test_neighbour_sum_gradients(monkeypatch, block):
    monkeypatch.setattr(native, "MESSAGE_BLOCK", block)
    g, src, dst = random_graph(3, 6, 5, 40)
    x = torch.randn(6, 2, 3, generator=g, dtype=torch.float64, requires_grad=True)
    w = torch.rand(40, 2, generator=g, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda x, w: native.u_mul_e_sum(x, w, src, dst, 5), (x, w))
    # the same gradients as plain autograd through the loop
    out = native.u_mul_e_sum(x, w, src, dst, 5)
    weights = torch.randn_like(out)
    got = torch.autograd.grad((out * weights).sum(), (x, w))
    want = torch.autograd.grad((loop_neighbour_sum(x, w, src, dst, 5) * weights).sum(), (x, w))
    for a, b in zip(got, want):
        assert torch.allclose(a, b)


def test_edge_softmax_gradient_and_stability():
    g, _, dst = random_graph(5, 4, 3, 20)
    logits = torch.randn(20, 2, generator=g, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda z: native.edge_softmax(z, dst, 3), (logits,))
    # huge logits neither overflow nor change the result (the per-destination maximum is removed)
    base = native.edge_softmax(logits.detach(), dst, 3)
    shifted = native.edge_softmax(logits.detach() + 1000.0, dst, 3)  # exp(1000) overflows even float64
    assert torch.isfinite(shifted).all() and torch.allclose(base, shifted, atol=1e-10)


def test_empty_relation():
    src = dst = torch.zeros(0, dtype=torch.int64)
    out = native.u_mul_e_sum(torch.randn(0, 2, 3), torch.zeros(0, 2), src, dst, 4)
    assert out.shape == (4, 2, 3) and not out.any()
    assert native.edge_softmax(torch.zeros(0, 2), dst, 4).shape == (0, 2)
