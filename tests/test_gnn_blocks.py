"""Sampled neighbourhoods: DGL's and the native sampler against each other and the graph, and the views."""

import pytest
import torch

from esrgraph.gnn.backends import dgl_importable
from esrgraph.gnn.blocks import ALL, NativeSampler, drop_block_edges, layer_fanouts, make_sampler, random_subsets
from esrgraph.gnn.config import GnnConfig
from esrgraph.gnn.model import ContrastiveModel, build_encoder
from esrgraph.gnn.synthetic import synthetic_edges
from esrgraph.gnn.tensors import GraphTensors

pytestmark = pytest.mark.usefixtures("one_thread")

BACKENDS = [
    "native",
    pytest.param("dgl", marks=pytest.mark.skipif(not dgl_importable(), reason="dgl cannot be imported")),
]


def small_graph(items: int = 300, seed: int = 1) -> GraphTensors:
    return GraphTensors.from_edges(synthetic_edges(items, seed=seed))


def model_for(cfg: GnnConfig, graph: GraphTensors, backend: str, in_dim: int = 24) -> ContrastiveModel:
    torch.manual_seed(0)
    features = {"item": torch.randn(graph.num_nodes["item"], in_dim)}
    return ContrastiveModel(build_encoder(cfg, graph, backend, features), cfg.projection)


def edge_triples(block, rel) -> set[tuple[int, int, int]]:
    """(global source, global destination, edge id) of a block's edges of ``rel``."""
    src, dst = block.edges[rel]
    src_ids = block.src_nodes[rel[0]][src].tolist()
    dst_ids = block.dst_nodes(rel[2])[dst].tolist()
    return set(zip(src_ids, dst_ids, block.edge_ids[rel].tolist()))


@pytest.mark.skipif(not dgl_importable(), reason="dgl cannot be imported")
@pytest.mark.parametrize("fanouts", [[ALL, ALL], [ALL, 3]])
def test_dgl_and_native_samplers_give_the_same_blocks_with_full_neighbourhoods(fanouts):
    """With every neighbour (and with fan-outs no node exceeds) nothing is random: the same blocks."""
    graph = small_graph(400, seed=2)
    seeds = {"item": torch.tensor([5, 17, 3, 250, 399, 120])}
    blocks = {
        name: make_sampler(name, graph, fanouts).sample(seeds, torch.Generator().manual_seed(0))
        for name in ("native", "dgl")
    }
    outputs = {}
    for name, sampled in blocks.items():
        cfg = GnnConfig(hidden=16, heads=2, projection=8)
        encoder = model_for(cfg, graph, name).encoder.eval()
        outputs[name] = encoder.forward_blocks(sampled, None, {"item"})["item"].detach()
    for native, dgl in zip(blocks["native"], blocks["dgl"]):
        assert set(native.src_nodes) == set(dgl.src_nodes) and set(native.edges) == set(dgl.edges)
        for t in native.src_nodes:  # the same nodes; new input nodes may come in another order
            assert sorted(native.dst_nodes(t).tolist()) == sorted(dgl.dst_nodes(t).tolist())
            assert sorted(native.src_nodes[t].tolist()) == sorted(dgl.src_nodes[t].tolist())
        for rel in native.edges:
            assert edge_triples(native, rel) == edge_triples(dgl, rel)
    assert torch.equal(blocks["native"][-1].dst_nodes("item"), seeds["item"])
    assert torch.equal(blocks["dgl"][-1].dst_nodes("item"), seeds["item"])
    assert blocks["native"][-1].num_edges() > 0 and blocks["native"][0].num_edges() > blocks["native"][-1].num_edges()
    torch.testing.assert_close(outputs["native"], outputs["dgl"], rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("backend", BACKENDS)
def test_sampled_blocks_keep_fanout_distinct_edges_and_repeat_with_the_seed(backend):
    graph = small_graph(2000, seed=4)
    sampler = make_sampler(backend, graph, [4, 2])
    seeds = {"item": torch.arange(1, 2001, 37)}
    blocks = sampler.sample(seeds, torch.Generator().manual_seed(11))
    for block, fanout in zip(blocks, [4, 2]):
        for rel, (src, dst) in block.edges.items():
            ids = block.edge_ids[rel]
            assert ids.unique().numel() == ids.numel()  # without replacement
            # each is an edge of the graph: its id names its own source and destination
            assert torch.equal(graph.edges[rel][0][ids], block.src_nodes[rel[0]][src])
            assert torch.equal(graph.edges[rel][1][ids], block.dst_nodes(rel[2])[dst])
            degree = torch.bincount(graph.edges[rel][1], minlength=graph.num_nodes[rel[2]])
            kept = torch.bincount(dst, minlength=block.num_dst_nodes(rel[2]))
            assert torch.equal(kept, degree[block.dst_nodes(rel[2])].clamp(max=fanout))
    again = sampler.sample(seeds, torch.Generator().manual_seed(11))
    other = sampler.sample(seeds, torch.Generator().manual_seed(12))
    rel = ("brand", "brand_of", "item")
    hub = ("item", "has_price", "price")  # 5 price buckets with hundreds of items each: sampled
    assert all(torch.equal(a.edge_ids[r], b.edge_ids[r]) for a, b in zip(blocks, again) for r in (rel, hub))
    assert not torch.equal(blocks[0].edge_ids[hub], other[0].edge_ids[hub])


def test_random_subsets_are_uniform_subsets_without_repeats():
    degree = torch.full((30000,), 6)
    picks = random_subsets(degree, 3, torch.Generator().manual_seed(0))
    assert picks.shape == (30000, 3) and picks.min() >= 0 and picks.max() <= 5
    assert (picks.sort(1).values.diff(dim=1) > 0).all()  # three distinct values per row
    share = torch.bincount(picks.flatten(), minlength=6) / 30000
    assert torch.allclose(share, torch.full((6,), 0.5), atol=0.02)  # each value in half the subsets
    huge = random_subsets(torch.tensor([10**6, 4]), 4, torch.Generator().manual_seed(1))
    assert huge[0].unique().numel() == 4 and sorted(huge[1].tolist()) == [0, 1, 2, 3]


def test_edge_dropping_decides_each_sampled_edge_once_for_every_layer():
    graph = small_graph(500, seed=5)
    blocks = NativeSampler(graph, [ALL, ALL]).sample({"item": torch.arange(1, 60)}, torch.Generator())
    views = drop_block_edges(blocks, 0.5, torch.Generator().manual_seed(0))
    for rel in graph.edges:
        first, last = (set(v.edge_ids[rel].tolist()) for v in views)
        shared = set(blocks[0].edge_ids[rel].tolist()) & set(blocks[1].edge_ids[rel].tolist())
        assert first & shared == last & shared  # kept in one layer exactly when kept in the other
    kept = sum(v.num_edges() for v in views) / sum(b.num_edges() for b in blocks)
    assert 0.4 < kept < 0.6
    assert drop_block_edges(blocks, 0.0, torch.Generator()) is blocks


def test_fanouts_per_layer():
    assert layer_fanouts(None, 2) == [ALL, ALL]
    assert layer_fanouts([10], 3) == [10, 10, 10]
    assert layer_fanouts([-1, 5], 2) == [ALL, 5]
