"""The contrastive losses against naive O(n^2) computations, and the weights that feed them."""

import pytest
import torch
import torch.nn.functional as F

from esrgraph.gnn import loss as loss_module
from esrgraph.gnn.config import GnnConfig
from esrgraph.gnn.loss import info_nce, link_loss
from esrgraph.gnn.model import ContrastiveModel, build_encoder
from esrgraph.gnn.synthetic import synthetic_edges
from esrgraph.gnn.tensors import GraphTensors


def naive_two_view_loss(z1, z2, tau):
    """Two-view InfoNCE written out as in its definition: each item's other view is its positive,
    every other item of both views a negative; averaged over both directions."""
    z1, z2 = F.normalize(z1, dim=1), F.normalize(z2, dim=1)

    def one_side(a, b):
        between, within = torch.exp(a @ b.T / tau), torch.exp(a @ a.T / tau)
        return -torch.log(between.diag() / (between.sum(1) + within.sum(1) - within.diag()))

    return 0.5 * (one_side(z1, z2) + one_side(z2, z1)).mean()


def views(n, d=8, seed=0):
    g = torch.Generator().manual_seed(seed)
    z1 = torch.randn(n, d, generator=g, dtype=torch.float64, requires_grad=True)
    z2 = (z1.detach() + 0.5 * torch.randn(n, d, generator=g, dtype=torch.float64)).requires_grad_()
    return z1, z2


@pytest.mark.parametrize("tau", [0.5, 0.2])
@pytest.mark.parametrize("block", [1, 5, 7, 1000])
@pytest.mark.parametrize("keep", [True, False])
def test_exact_loss_in_blocks_equals_naive(monkeypatch, tau, block, keep):
    monkeypatch.setattr(loss_module, "KEEP_SCORES", 1 << 27 if keep else 0)
    z1, z2 = views(23)
    want = naive_two_view_loss(z1, z2, tau)
    got = info_nce(z1, z2, tau, "exact", block)
    assert torch.allclose(got, want, rtol=1e-12)
    for a, b in zip(torch.autograd.grad(got, (z1, z2)), torch.autograd.grad(want, (z1, z2))):
        assert torch.allclose(a, b, rtol=1e-9, atol=1e-12)


def test_exact_loss_with_a_tiny_temperature():
    """Below tau = 0.025 the fixed shift could underflow; the per-row maximum path takes over."""
    z1, z2 = views(9)
    z1n, z2n = F.normalize(z1, dim=1), F.normalize(z2, dim=1)
    zz = torch.cat([z1n, z2n])
    scores = zz @ zz.T / 0.01
    scores.fill_diagonal_(float("-inf"))
    partner = torch.cat([torch.arange(9, 18), torch.arange(9)])
    want = (torch.logsumexp(scores, 1) - scores[torch.arange(18), partner]).mean()
    got = info_nce(z1, z2, 0.01, "exact", 4)
    assert torch.allclose(got, want)
    for a, b in zip(torch.autograd.grad(got, (z1, z2)), torch.autograd.grad(want, (z1, z2))):
        assert torch.allclose(a, b, rtol=1e-9, atol=1e-9)


def test_in_batch_loss_is_the_exact_loss_of_each_shuffled_batch():
    z1, z2 = views(23)
    torch.manual_seed(7)
    got = info_nce(z1, z2, 0.5, "in-batch", 5)
    torch.manual_seed(7)
    order = torch.randperm(23)
    batches = list(order.split(5))
    want = sum(naive_two_view_loss(z1[b], z2[b], 0.5) * len(b) for b in batches) / 23
    assert torch.allclose(got, want, rtol=1e-12)
    for a, b in zip(torch.autograd.grad(got, (z1, z2)), torch.autograd.grad(want, (z1, z2))):
        assert torch.allclose(a, b, rtol=1e-9, atol=1e-12)


def test_in_batch_with_one_batch_is_exact():
    z1, z2 = views(10)
    assert torch.allclose(info_nce(z1, z2, 0.5, "in-batch", 64), naive_two_view_loss(z1, z2, 0.5), rtol=1e-12)


def test_loss_rewards_agreeing_views():
    z1, _ = views(50)
    same = info_nce(z1, z1.detach().clone(), 0.5, "exact", 16)
    unrelated = info_nce(z1, torch.randn(50, 8, dtype=torch.float64), 0.5, "exact", 16)
    assert same < unrelated


def test_link_loss_prefers_true_links():
    n_items, n_brands = 40, 5
    item = torch.arange(1, n_items)
    brand = item % n_brands
    graph = GraphTensors(
        {"item": n_items, "brand": n_brands},
        {("item", "has_brand", "brand"): (item, brand), ("brand", "brand_of", "item"): (brand, item)},
    )
    torch.manual_seed(0)
    brands = torch.randn(n_brands, 16)
    aligned = {"item": torch.cat([torch.zeros(1, 16), brands[brand]]), "brand": brands}
    shuffled = {"item": torch.randn(n_items, 16), "brand": brands}
    assert link_loss(aligned, graph, 256, 0.5) < link_loss(shuffled, graph, 256, 0.5)


def test_attention_combine_weighs_only_node_types_that_several_relations_reach():
    graph = GraphTensors.from_edges(synthetic_edges(200, seed=3))
    cfg = GnnConfig(hidden=16, heads=2, combine="attention", layers=2)
    torch.manual_seed(0)
    model = ContrastiveModel(build_encoder(cfg, graph, "native"), 8)
    model.loss(graph, cfg).backward()
    first = model.encoder.layers[0].combine
    weighted = sorted(t for t, module in first.items() if list(module.parameters()))
    assert weighted == ["item"]  # brand, category and price are each reached by one relation
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in first["item"].parameters())
