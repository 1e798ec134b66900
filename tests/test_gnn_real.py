"""The bundled amazon-scientific graph: DGL/native parity, and the probe of `esr pretrain-gnn`."""

import copy
import json

import numpy as np
import pytest
import torch

from cli.main import main
from esrgraph.config import load_config
from esrgraph.gnn.config import GnnConfig
from esrgraph.gnn.encoder import GraphEncoder
from esrgraph.gnn.model import ContrastiveModel, build_encoder
from esrgraph.gnn.tensors import GraphTensors
from esrgraph.graph.io import load_edges
from esrgraph.pipeline import ensure
from esrgraph.runs import Run

dgl = pytest.importorskip("dgl")
from esrgraph.gnn.dgl_backend import tensors_from_dgl  # noqa: E402
from esrgraph.graph.io import load_graph  # noqa: E402

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def root(tmp_path_factory):
    return tmp_path_factory.mktemp("gnnruns")


@pytest.fixture(scope="module")
def graph_dir(root):
    return ensure(Run(load_config(None, [f"run.root={root}"])), "graph")


@pytest.fixture(scope="module")
def graph(graph_dir):
    """Edge tensors taken from the DGL graph the graph stage saved."""
    g, _ = load_graph(graph_dir)
    return tensors_from_dgl(g)


def test_dgl_graph_and_edge_arrays_hold_the_same_edges(graph, graph_dir):
    edges = load_edges(graph_dir)
    assert graph.num_nodes == edges.num_nodes
    for rel, (src, dst) in edges.edges.items():
        assert np.array_equal(graph.edges[rel][0].numpy(), src) and np.array_equal(graph.edges[rel][1].numpy(), dst)


def outputs_and_gradients(encoder: GraphEncoder, graph: GraphTensors, weights: dict[str, torch.Tensor]):
    encoder.zero_grad()
    out = encoder(graph)
    loss = sum((out[t] * w).sum() for t, w in weights.items()) / graph.num_nodes["item"]
    loss.backward()
    grads = {name: p.grad.clone() for name, p in encoder.named_parameters() if p.grad is not None}
    return {t: x.detach() for t, x in out.items()}, grads


def assert_close(a, b):
    for key in a:
        torch.testing.assert_close(a[key], b[key], rtol=1e-5, atol=1e-5, msg=lambda m, key=key: f"{key}: {m}")


@pytest.mark.parametrize("combine", ["sum", "mean", "attention"])
def test_dgl_and_native_paths_agree_on_the_real_graph(graph, combine):
    torch.manual_seed(0)
    features = {"item": torch.nn.functional.normalize(torch.randn(graph.num_nodes["item"], 384), dim=1)}
    native = GraphEncoder(
        graph.num_nodes,
        graph.relations(),
        dim=64,
        layers=2,
        heads=4,
        combine=combine,
        features=features,
        backend="native",
    ).eval()
    with_dgl = copy.deepcopy(native)
    with_dgl.backend = "dgl"
    weights = {t: torch.randn(n, 64) for t, n in graph.num_nodes.items()}
    out_native, grads_native = outputs_and_gradients(native, graph, weights)
    out_dgl, grads_dgl = outputs_and_gradients(with_dgl, graph, weights)
    assert set(grads_native) == set(grads_dgl) and len(grads_native) > 20
    assert_close(out_native, out_dgl)
    assert_close(grads_native, grads_dgl)


def test_a_whole_training_step_agrees_between_paths(graph):
    """Augmented views, dropout and the loss draw the same random numbers on both paths."""
    cfg = GnnConfig(feat_drop=0.1, attn_drop=0.1, link_weight=0.5)
    torch.manual_seed(0)
    features = {"item": torch.randn(graph.num_nodes["item"], 384)}
    native = ContrastiveModel(build_encoder(cfg, graph, "native", features), cfg.projection)
    with_dgl = copy.deepcopy(native)
    with_dgl.encoder.backend = "dgl"
    results = []
    for model in (native, with_dgl):
        torch.manual_seed(1)
        loss = model.loss(graph, cfg)
        loss.backward()
        results.append((loss.detach(), {n: p.grad for n, p in model.named_parameters() if p.grad is not None}))
    torch.testing.assert_close(results[0][0], results[1][0], rtol=1e-5, atol=1e-5)
    assert_close(results[0][1], results[1][1])


def test_pretraining_beats_the_untrained_encoder(root, capsys):
    args = ["pretrain-gnn", "-o", f"run.root={root}", "-o", "gnn.item_input=id", "-o", "gnn.epochs=25"]
    assert main(args) == 0
    out = capsys.readouterr().out
    assert "untrained encoder" in out and "trained encoder" in out and "category@10" in out
    (stage,) = root.glob("amazon-scientific-*/gnn")
    probe = json.loads((stage / "probe.json").read_text())
    before, after = probe["rows"]["untrained encoder"], probe["rows"]["trained encoder"]
    assert after["category"] > before["category"] + 0.01
    assert after["category"] > 5 * probe["chance"]["category"]
    emb = np.load(stage / "item_graph.npy")
    assert emb.shape == (4345, 64) and not emb[0].any()
