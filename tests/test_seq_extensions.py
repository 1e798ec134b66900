"""The project's extensions: graph fusion modes and head/tail user heads."""

import numpy as np
import pytest
import torch

from esrgraph.seq.config import HeadsConfig, SeqConfig
from esrgraph.seq.model import SeqRecommender
from esrgraph.seq.views import GATE_BIAS

N, U = 20, 6
TAIL = torch.tensor([True, True, False, True, False, False])


def build(fusion="none", heads=False, theta=(0.5, 0.5), learn=False, variant="llmesr", seed=0, shared_gradient=True):
    torch.manual_seed(seed)
    cfg = SeqConfig(hidden_size=8, num_heads=1, dropout=0.0, fusion=fusion, variant=variant,
                    heads=HeadsConfig(enabled=heads, theta_head=theta[0], theta_tail=theta[1], learn_theta=learn,
                                      shared_gradient=shared_gradient))
    llm, pca, graph = torch.randn(N + 1, 12), torch.randn(N + 1, 8), torch.randn(N + 1, 6)
    for t in (llm, pca, graph):
        t[0] = 0
    return SeqRecommender(cfg, N, llm, pca, graph if fusion != "none" else None, TAIL).eval()


def histories():
    items = torch.tensor([[1, 2, 3, 0], [4, 5, 0, 0], [6, 7, 8, 9], [2, 4, 6, 0], [3, 3, 0, 0], [9, 8, 7, 6]])
    return items, (items > 0).sum(1), torch.arange(U)


def test_changing_one_groups_theta_changes_only_that_groups_scores():
    base = build(heads=True, theta=(0.3, 0.3))
    with torch.no_grad():  # make the two heads differ from the shared score
        for layer in base.heads.proj:
            layer.weight.add_(0.3 * torch.randn_like(layer.weight))
    items, lengths, users = histories()
    before = base.score_all(base.user_vectors(items, lengths, users))
    base.heads.theta_fixed[1] = 0.9  # the tail group's weight only
    after = base.score_all(base.user_vectors(items, lengths, users))
    changed = ~torch.isclose(before[:, 1:], after[:, 1:], atol=1e-6).all(1)
    assert torch.equal(changed, TAIL)


def test_mixing_equals_weighted_shared_and_head_scores():
    m = build(heads=True, theta=(0.2, 0.7))
    with torch.no_grad():
        for layer in m.heads.proj:
            layer.weight.add_(0.3 * torch.randn_like(layer.weight))
    items, lengths, users = histories()
    shared = m.user_vectors(items, lengths)
    tables = m.item_tables()
    mixed = m.score_all(m.user_vectors(items, lengths, users), tables)
    for u in range(U):
        g = int(TAIL[u])
        head = m.heads.proj[g](shared[u]) @ tables.T
        theta = (0.2, 0.7)[g]
        want = (1 - theta) * (shared[u] @ tables.T) + theta * head
        assert torch.allclose(mixed[u, 1:], want[1:], atol=1e-4)


def test_both_heads_are_trained():
    from esrgraph.seq.batches import Batch

    m = build(heads=True, learn=True)
    with torch.no_grad():  # at the identity start θ has no effect; move the heads off it
        for layer in m.heads.proj:
            layer.weight.add_(0.3 * torch.randn_like(layer.weight))
    m.train()
    items, lengths, users = histories()
    targets = torch.roll(items, -1, 1) * (items > 0)
    loss, _ = m(Batch(users, items, lengths, targets), torch.randint(1, N + 1, (*items.shape, 1)), 1.0, "bce")
    loss.backward()
    for layer in m.heads.proj:
        assert layer.weight.grad is not None and layer.weight.grad.abs().sum() > 0
    assert m.heads.theta_logit.grad.abs().sum() > 0


def test_gate_starts_nearly_closed_and_view_adds_a_view():
    gate = build("gate")
    values = gate.views.gate_values()[1:]
    assert torch.allclose(values, torch.sigmoid(torch.tensor(GATE_BIAS)), atol=0.2)
    view = build("view")
    assert view.views.names == ["semantic", "collaborative", "graph"] and view.user_dim == 24
    assert build("none").views.names == ["semantic", "collaborative"]


def test_gate_closed_means_no_graph():
    m = build("gate")
    with torch.no_grad():
        m.views.gate.bias.fill_(-1e4)
    ids = torch.arange(1, N + 1)
    assert torch.allclose(m.views._collaborative(ids), m.views.ids(ids), atol=1e-6)


def test_frozen_graph_is_a_buffer_and_finetuned_a_parameter():
    frozen = build("view")
    assert "views.graph.table" in dict(frozen.named_buffers())
    torch.manual_seed(0)
    cfg = SeqConfig(hidden_size=8, num_heads=1, fusion="view", graph_finetune=True)
    tuned = SeqRecommender(cfg, N, torch.randn(N + 1, 12), torch.randn(N + 1, 8), torch.randn(N + 1, 6), TAIL)
    assert "views.graph.table" in dict(tuned.named_parameters())


@pytest.mark.parametrize("backbone", ["sasrec", "gru4rec", "bert4rec"])
@pytest.mark.parametrize("fusion, heads, cross, loss", [
    ("none", False, True, "bce"), ("init", True, False, "ce"), ("gate", True, True, "bce"), ("view", False, False, "ce"),
])
def test_every_combination_trains_and_scores(backbone, fusion, heads, cross, loss):
    from esrgraph.seq.batches import Batch

    torch.manual_seed(0)
    cfg = SeqConfig(backbone=backbone, hidden_size=8, num_heads=2, dropout=0.1, fusion=fusion, cross_attention=cross,
                    heads=HeadsConfig(enabled=heads))
    graph = torch.randn(N + 1, 6) if fusion in ("gate", "view") else None
    m = SeqRecommender(cfg, N, torch.randn(N + 1, 12), torch.randn(N + 1, 8), graph, TAIL).train()
    items, lengths, users = histories()
    targets = torch.roll(items, -1, 1) * (items > 0)
    value, students = m(Batch(users, items, lengths, targets), torch.randint(1, N + 1, (*items.shape, 2)), 10.0, loss,
                        Batch(users, items, lengths))
    value.backward()
    assert torch.isfinite(value) and students.shape == (U, m.user_dim)
    assert all(p.grad is not None for n, p in m.named_parameters() if "views.ids" in n or "encoder" in n)
    m.eval()
    scores = m.score_all(m.user_vectors(items, lengths, users))
    assert scores.shape == (U, N + 1) and torch.isfinite(scores[:, 1:]).all()


def test_fused_init_balances_text_and_graph_and_keeps_the_pca_scale():
    from esrgraph.seq.stage import fused_init

    rng = np.random.default_rng(0)
    pca_rows = torch.from_numpy(rng.normal(scale=0.1, size=(N + 1, 8)).astype(np.float32))
    graph = torch.from_numpy(rng.normal(scale=10.0, size=(N + 1, 6)).astype(np.float32))
    pca_rows[0] = graph[0] = 0
    fused = fused_init(pca_rows, graph, 8)
    assert fused.shape == (N + 1, 8) and not fused[0].any()
    assert fused[1:].std().item() == pytest.approx(pca_rows[1:].std().item(), rel=1e-4)
    # both sources shape the result: it correlates with each of them
    corr = lambda a, b: abs(np.corrcoef(a, b)[0, 1])
    top = fused[1:, 0].numpy()
    assert max(corr(top, pca_rows[1:, j].numpy()) for j in range(8)) > 0.1
    assert max(corr(top, graph[1:, j].numpy()) for j in range(6)) > 0.1


@pytest.mark.parametrize("fusion", ["gate", "view"])
def test_graph_table_enters_at_the_collaborative_scale(tmp_path, fusion):
    from esrgraph.config import load_config
    from esrgraph.seq.stage import Inputs, model_inputs
    from tests.conftest import make_dataset

    rng = np.random.default_rng(0)
    (tmp_path / "embed").mkdir()
    (tmp_path / "gnn").mkdir()
    pca_rows = rng.normal(scale=0.1, size=(N + 1, 64)).astype(np.float32)
    np.save(tmp_path / "embed" / "item_llm.npy", rng.normal(size=(N + 1, 12)).astype(np.float32))
    np.save(tmp_path / "embed" / "item_pca.npy", pca_rows)
    np.save(tmp_path / "gnn" / "item_graph.npy", rng.normal(scale=8.0, size=(N + 1, 64)).astype(np.float32))
    cfg = load_config(None, [f"seq.fusion={fusion}"])
    ds = make_dataset([[1, 2, 3], [4, 5, 6, 7]], N)
    tensors = model_inputs(cfg, Inputs(ds, tmp_path / "embed", tmp_path / "gnn"))
    assert tensors["graph"][1:].std().item() == pytest.approx(torch.from_numpy(pca_rows[1:]).std().item(), rel=1e-4)


def test_shared_score_keeps_its_own_loss_and_each_head_learns_from_its_group():
    from esrgraph.seq.batches import Batch

    m = build(heads=True)
    plain = build(heads=False)
    plain.load_state_dict({k: v for k, v in m.state_dict().items() if not k.startswith("heads.")})
    items, lengths, users = histories()
    targets = torch.roll(items, -1, 1) * (items > 0)
    negatives = torch.randint(1, N + 1, (*items.shape, 1), generator=torch.Generator().manual_seed(0))
    batch = Batch(users, items, lengths, targets)
    shared, _ = plain(batch, negatives, 1.0, "bce")
    both, _ = m(batch, negatives, 1.0, "bce")
    # identity heads score exactly like the shared score: shared loss + head loss = 2 × shared loss
    assert torch.allclose(both, 2 * shared, rtol=1e-5)
    head_only = ~TAIL[users]
    sub = Batch(users[head_only], items[head_only], lengths[head_only], targets[head_only])
    with torch.no_grad():
        m.heads.proj[1].weight.add_(torch.randn_like(m.heads.proj[1].weight))
    loss, _ = m(sub, negatives[head_only], 1.0, "bce")
    loss.backward()
    assert m.heads.proj[1].weight.grad.abs().sum() == 0  # tail head: no tail user in the batch
    assert m.heads.proj[0].weight.grad.abs().sum() > 0


def test_readout_heads_leave_the_shared_models_gradients_alone():
    from esrgraph.seq.batches import Batch

    m = build(heads=True, shared_gradient=False)
    plain = build(heads=False)
    plain.load_state_dict({k: v for k, v in m.state_dict().items() if not k.startswith("heads.")})
    with torch.no_grad():
        for layer in m.heads.proj:
            layer.weight.add_(0.3 * torch.randn_like(layer.weight))
    items, lengths, users = histories()
    targets = torch.roll(items, -1, 1) * (items > 0)
    negatives = torch.randint(1, N + 1, (*items.shape, 1), generator=torch.Generator().manual_seed(0))
    for model in (m, plain):
        loss, _ = model(Batch(users, items, lengths, targets), negatives, 1.0, "bce")
        loss.backward()
    shared = dict(plain.named_parameters())
    for name, param in m.named_parameters():
        if name.startswith("heads."):
            assert param.grad.abs().sum() > 0, name
        elif shared[name].grad is not None:
            assert torch.allclose(param.grad, shared[name].grad, atol=1e-6), name
