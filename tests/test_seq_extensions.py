"""The project's extensions: graph fusion modes and user-group readouts."""

import numpy as np
import pytest
import torch

from esrgraph.data.sequences import Batch
from esrgraph.seq.config import ReadoutsConfig, SeqConfig
from esrgraph.seq.model import SeqRecommender, TrainingParts
from esrgraph.seq.objectives import BinaryCrossEntropy, Candidates
from esrgraph.seq.registry import OBJECTIVES
from esrgraph.seq.schemes import TrainingBatch

N, U = 20, 6
TAIL = torch.tensor([True, True, False, True, False, False])


BCE = BinaryCrossEntropy(N)


def loss_of(model, batch: Batch, candidates: Candidates, norm: float, objective) -> torch.Tensor:
    """The model's loss of one batch under ``objective`` (no auxiliary terms)."""
    model.training_parts = TrainingParts(None, objective, (), 1.0)
    return model(TrainingBatch(batch, candidates, norm, batch.users.numpy()))


def build(fusion="none", mode="none", theta=(0.5, 0.5), variant="llmesr", seed=0, groups="head_tail"):
    torch.manual_seed(seed)
    cfg = SeqConfig(
        hidden_size=8,
        num_heads=1,
        dropout=0.0,
        fusion=fusion,
        variant=variant,
        readouts=ReadoutsConfig(mode=mode, groups=groups, theta_head=theta[0], theta_tail=theta[1]),
    )
    llm, pca, graph = torch.randn(N + 1, 12), torch.randn(N + 1, 8), torch.randn(N + 1, 6)
    for t in (llm, pca, graph):
        t[0] = 0
    return SeqRecommender(cfg, N, llm, pca, graph if fusion != "none" else None, TAIL).eval()


def histories():
    items = torch.tensor([[1, 2, 3, 0], [4, 5, 0, 0], [6, 7, 8, 9], [2, 4, 6, 0], [3, 3, 0, 0], [9, 8, 7, 6]])
    return items, (items > 0).sum(1), torch.arange(U)


def test_changing_one_groups_theta_changes_only_that_groups_scores():
    base = build(mode="joint", theta=(0.3, 0.3))
    with torch.no_grad():  # make the two readouts differ from the shared score
        for layer in base.readouts.proj:
            layer.weight.add_(0.3 * torch.randn_like(layer.weight))
    items, lengths, users = histories()
    before = base.score_all(base.user_vectors(items, lengths, users))
    base.readouts.theta[1] = 0.9  # the tail group's weight only
    after = base.score_all(base.user_vectors(items, lengths, users))
    changed = ~torch.isclose(before[:, 1:], after[:, 1:], atol=1e-6).all(1)
    assert torch.equal(changed, TAIL)


def test_mixing_equals_weighted_shared_and_readout_scores():
    m = build(mode="joint", theta=(0.2, 0.7))
    with torch.no_grad():
        for layer in m.readouts.proj:
            layer.weight.add_(0.3 * torch.randn_like(layer.weight))
    items, lengths, users = histories()
    shared = m.user_vectors(items, lengths)
    tables = m.item_tables().full()
    mixed = m.score_all(m.user_vectors(items, lengths, users), tables)
    for u in range(U):
        g = int(TAIL[u])
        head = m.readouts.proj[g](shared[u]) @ tables.T
        theta = (0.2, 0.7)[g]
        want = (1 - theta) * (shared[u] @ tables.T) + theta * head
        assert torch.allclose(mixed[u, 1:], want[1:], atol=1e-4)


def test_joint_readouts_both_train_and_head_users_skip_distillation():
    m = build(mode="joint")
    with torch.no_grad():  # move the readouts off the identity start
        for layer in m.readouts.proj:
            layer.weight.add_(0.3 * torch.randn_like(layer.weight))
    m.train()
    items, lengths, users = histories()
    targets = torch.roll(items, -1, 1) * (items > 0)
    negatives = Candidates(torch.randint(1, N + 1, (*items.shape, 1)))
    loss = loss_of(m, Batch(users, items, lengths, targets), negatives, 1.0, BCE)
    loss.backward()
    for layer in m.readouts.proj:
        assert layer.weight.grad is not None and layer.weight.grad.abs().sum() > 0
    assert torch.equal(~m.readouts.skips_distillation(users), TAIL)
    assert not build(mode="fitted").readouts.skips_distillation(users).any()  # fitted: trains as without


def test_one_readout_for_every_user():
    m = build(mode="joint", groups="all", theta=(0.5, 0.4))
    assert m.readouts.names == ("all",) and len(m.readouts.proj) == 1
    with torch.no_grad():
        m.readouts.proj[0].weight.add_(0.3 * torch.randn_like(m.readouts.proj[0].weight))
    items, lengths, users = histories()
    shared = m.user_vectors(items, lengths)
    want = 0.6 * shared + 0.4 * m.readouts.proj[0](shared)
    assert torch.allclose(m.user_vectors(items, lengths, users), want, atol=1e-5)


def test_view_adds_a_view():
    view = build("view")
    assert view.views.names == ["semantic", "collaborative", "graph"] and view.user_dim == 24
    assert build("none").views.names == ["semantic", "collaborative"]


def test_frozen_graph_is_a_buffer_and_finetuned_a_parameter():
    frozen = build("view")
    assert "views.graph.table" in dict(frozen.named_buffers())
    torch.manual_seed(0)
    cfg = SeqConfig(hidden_size=8, num_heads=1, fusion="view", graph_finetune=True)
    tuned = SeqRecommender(cfg, N, torch.randn(N + 1, 12), torch.randn(N + 1, 8), torch.randn(N + 1, 6), TAIL)
    assert "views.graph.table" in dict(tuned.named_parameters())


@pytest.mark.parametrize("backbone", ["sasrec", "gru4rec", "bert4rec"])
@pytest.mark.parametrize(
    "fusion, mode, cross, loss",
    [
        ("none", "none", True, "bce"),
        ("init", "joint", False, "ce"),
        ("view", "joint", True, "gbce"),
        ("view", "none", False, "sampled_softmax"),
    ],
)
def test_every_combination_trains_and_scores(backbone, fusion, mode, cross, loss):
    torch.manual_seed(0)
    cfg = SeqConfig(
        backbone=backbone,
        hidden_size=8,
        num_heads=2,
        dropout=0.1,
        fusion=fusion,
        cross_attention=cross,
        readouts=ReadoutsConfig(mode=mode),
    )
    graph = torch.randn(N + 1, 6) if fusion == "view" else None
    m = SeqRecommender(cfg, N, torch.randn(N + 1, 12), torch.randn(N + 1, 8), graph, TAIL).train()
    items, lengths, users = histories()
    targets = torch.roll(items, -1, 1) * (items > 0)
    objective = OBJECTIVES.get(loss)(N, negatives=4, popularity=torch.ones(N + 1))
    candidates = objective.draw(targets, torch.Generator().manual_seed(0))
    batch = Batch(users, items, lengths, targets, Batch(users, items, lengths))
    value = loss_of(m, batch, candidates, 10.0, objective)
    value.backward()
    students = m.last_outputs(TrainingBatch(batch, candidates, 10.0, users.numpy()), None)
    assert torch.isfinite(value) and students.shape == (U, m.user_dim)
    assert all(p.grad is not None for n, p in m.named_parameters() if "views.ids" in n or "encoder" in n)
    m.eval()
    scores = m.score_all(m.user_vectors(items, lengths, users))
    assert scores.shape == (U, N + 1) and torch.isfinite(scores[:, 1:]).all()


def test_fused_init_balances_text_and_graph_and_keeps_the_pca_scale():
    from esrgraph.seq.build import fused_init

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


def test_graph_table_enters_at_the_collaborative_scale():
    from esrgraph.config import load_config
    from esrgraph.seq.build import RecommenderInputs, model_tensors
    from tests.conftest import make_dataset

    rng = np.random.default_rng(0)
    pca_rows = rng.normal(scale=0.1, size=(N + 1, 64)).astype(np.float32)
    inputs = RecommenderInputs(
        make_dataset([[1, 2, 3], [4, 5, 6, 7]], N),
        llm=rng.normal(size=(N + 1, 12)),
        pca=pca_rows,
        graph=rng.normal(scale=8.0, size=(N + 1, 64)),
    )
    tensors = model_tensors(load_config(None, ["seq.fusion=view"]), inputs)
    assert tensors["graph"][1:].std().item() == pytest.approx(torch.from_numpy(pca_rows[1:]).std().item(), rel=1e-4)


def test_shared_score_keeps_its_own_loss_and_each_readout_learns_from_its_group():
    m = build(mode="joint")
    plain = build()
    plain.load_state_dict({k: v for k, v in m.state_dict().items() if not k.startswith("readouts.")})
    items, lengths, users = histories()
    targets = torch.roll(items, -1, 1) * (items > 0)
    negatives = torch.randint(1, N + 1, (*items.shape, 1), generator=torch.Generator().manual_seed(0))
    batch = Batch(users, items, lengths, targets)
    shared = loss_of(plain, batch, Candidates(negatives), 1.0, BCE)
    both = loss_of(m, batch, Candidates(negatives), 1.0, BCE)
    # identity readouts score exactly like the shared score: shared loss + readout loss = 2 × shared loss
    assert torch.allclose(both, 2 * shared, rtol=1e-5)
    head_only = ~TAIL[users]
    sub = Batch(users[head_only], items[head_only], lengths[head_only], targets[head_only])
    with torch.no_grad():
        m.readouts.proj[1].weight.add_(torch.randn_like(m.readouts.proj[1].weight))
    loss = loss_of(m, sub, Candidates(negatives[head_only]), 1.0, BCE)
    loss.backward()
    assert m.readouts.proj[1].weight.grad.abs().sum() == 0  # tail readout: no tail user in the batch
    assert m.readouts.proj[0].weight.grad.abs().sum() > 0


def test_a_popularity_correction_is_chosen_on_validation_and_saved_with_the_model(tiny, tmp_path):
    import json

    from cli.main import main
    from esrgraph.data.sequences import SequenceData
    from esrgraph.data.store import load_dataset
    from esrgraph.seq.popularity import GRID
    from tests.test_seq_train import run_cli

    args = run_cli(tiny, tmp_path / "runs", "seq.variant=plain", "seq.popularity_correction=fitted")
    assert main(["train-seq"] + args) == 0
    run_dir = tmp_path / "runs" / "r"
    fitted = json.loads((run_dir / "seq" / "manifest.json").read_text())["seeds"]["42"]["popularity_correction"]
    curve = fitted["by_beta"]["overall"]
    assert fitted["beta"] in GRID and len(curve) == len(GRID)
    assert fitted["valid_NDCG@10"] == max(curve) and curve.index(max(curve)) == GRID.index(fitted["beta"])
    bias = torch.load(run_dir / "seq" / "model-seed42.pt", weights_only=True)["item_bias"]
    popularity = SequenceData(load_dataset(run_dir / "dataset"), 10).train_popularity().float()
    assert torch.allclose(bias, -fitted["beta"] * torch.log1p(popularity))  # −β·log(1 + training popularity)
