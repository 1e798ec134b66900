"""Backbones and the LLM-ESR model: padding invariance, causality, the reference options, distillation."""

import numpy as np
import pytest
import torch

from esrgraph.data.sequences import SequenceData
from esrgraph.eval.config import EvalConfig
from esrgraph.eval.evaluate import Evaluator
from esrgraph.seq.config import SeqConfig
from esrgraph.seq.distill import SelfDistillation
from esrgraph.seq.model import SeqRecommender
from tests.conftest import make_dataset

N = 20


def model(backbone="sasrec", variant="llmesr", **kw):
    torch.manual_seed(0)
    cfg = SeqConfig(
        backbone=backbone,
        variant=variant,
        hidden_size=8,
        num_heads=2,
        max_length=kw.pop("max_length", 30),
        dropout=0.0,
        **kw,
    )
    llm = torch.randn(N + 1, 12)
    llm[0] = 0
    return SeqRecommender(cfg, N, llm, torch.randn(N + 1, 8)).eval()


def padded(rows, width=None):
    width = width or max(map(len, rows))
    items = torch.zeros(len(rows), width, dtype=torch.long)
    for r, seq in enumerate(rows):
        items[r, : len(seq)] = torch.tensor(seq)
    return items, torch.tensor([len(s) for s in rows])


@pytest.mark.parametrize("backbone", ["sasrec", "gru4rec", "bert4rec"])
@pytest.mark.parametrize("variant", ["plain", "llmesr"])
def test_padding_and_batch_company_do_not_change_a_user(backbone, variant):
    m = model(backbone, variant)
    user = [3, 7, 1, 9]
    alone = m.user_vectors(*padded([user]))
    with_long = m.user_vectors(*padded([user, list(range(1, 19))]))[0:1]
    extra_padding = m.user_vectors(*padded([user], width=25))
    assert torch.allclose(alone, with_long, atol=1e-5) and torch.allclose(alone, extra_padding, atol=1e-5)
    assert alone.shape == (1, 16 if variant == "llmesr" else 8)


@pytest.mark.parametrize(
    "backbone, extra",
    [
        ("sasrec", {}),
        ("sasrec", {"num_layers": 1}),
        ("sasrec", {"cross_attention": True}),
        ("sasrec", {"reference_padding": True}),
        ("bert4rec", {}),
        ("bsarec", {"max_length": 12}),
    ],
)
def test_ranking_reads_the_last_position_as_the_full_pass_does(backbone, extra):
    """In eval mode the last block computes only each row's last position; the vector must be the one
    the whole sequence's outputs give there. A wrong key mask or query row would move it."""
    m = model(backbone, "llmesr", **extra)
    assert m.reads_one_position == (backbone != "bsarec")  # else the fast path is never compared
    rows = [[3, 7, 1, 9, 4, 2], [5], [8, 8, 2]]
    items, lengths = padded(rows, width=7)
    if m.left_pad:  # a window of max_length positions, history at the right
        items, lengths = padded([[0] * (m.cfg.max_length - len(r)) + r for r in rows])[0], torch.tensor([6, 1, 3])
    fast = m.user_vectors(items, lengths)
    if m.appended_tokens:
        items, lengths = m._append_mask(items, lengths)
    full = m._last(m.sequence_outputs(items, lengths), items, lengths)
    assert fast.shape == (3, 16)
    assert torch.allclose(fast, full, atol=1e-5)
    assert not torch.allclose(fast[0], fast[2], atol=1e-3)  # rows stay distinct


def test_results_do_not_depend_on_max_length():
    short, long = model(max_length=10), model(max_length=60)  # the same seed, nothing copied
    assert torch.equal(long.encoder.positions.weight[:11], short.encoder.positions.weight)
    seqs = [[3, 7, 1, 9], [2, 4]]
    assert torch.allclose(short.user_vectors(*padded(seqs)), long.user_vectors(*padded(seqs)), atol=1e-5)


def test_reference_padding_attends_to_padding():
    ref = model(reference_padding=True)
    a = ref.user_vectors(*_left([[3, 7, 1, 9]], 30))
    b = ref.user_vectors(*_left([[3, 7, 1, 9]], 20))
    assert not torch.allclose(a, b, atol=1e-4)  # the reference's results move with the padding width


def _left(rows, width):
    items = torch.zeros(len(rows), width, dtype=torch.long)
    for r, seq in enumerate(rows):
        items[r, width - len(seq) :] = torch.tensor(seq)
    return items, torch.tensor([len(s) for s in rows])


def test_causal_mask_hides_the_future():
    m = model(causal=True)
    seq = padded([[3, 7, 1, 9, 4]])
    changed = padded([[3, 7, 1, 2, 8]])
    out_a = m.sequence_outputs(*seq)
    out_b = m.sequence_outputs(*changed)
    assert torch.allclose(out_a[:, :3], out_b[:, :3], atol=1e-5)  # positions before the change see no change
    nc = model(causal=False)
    assert not torch.allclose(nc.sequence_outputs(*seq)[:, :3], nc.sequence_outputs(*changed)[:, :3], atol=1e-4)


def test_scores_are_sums_of_view_dot_products():
    m = model()
    users = m.user_vectors(*padded([[3, 7, 1]]))
    semantic, collaborative = m.views.tables()
    want = users[:, :8] @ semantic.T + users[:, 8:] @ collaborative.T
    got = m.score_all(users)
    assert torch.allclose(got[:, 1:], want[:, 1:], atol=1e-5) and torch.isinf(got[0, 0])
    cand = torch.tensor([[5, 2, 11]])
    assert torch.allclose(m.score_items(users, cand), want[:, [5, 2, 11]], atol=1e-5)


def test_item_tables_concatenate_a_block_of_rows_at_a_time():
    """Scoring tables give any block of rows as the views side by side, and scores by block equal the
    whole table's, while the id view stays the table's own storage (nothing copied up front)."""
    m = model().eval()
    with torch.no_grad():
        tables = m.item_tables()
        semantic, collaborative = m.views.tables()
        whole = torch.cat([semantic, collaborative], dim=-1)
        assert tables.shape == whole.shape and len(tables) == N + 1
        assert torch.equal(tables[3:9], whole[3:9]) and torch.equal(tables.full(), whole)
        assert tables.views[1].data_ptr() == m.views.ids.weight.data_ptr()
        users = m.user_vectors(*padded([[3, 7, 1], [2, 5]]))
        blocks = torch.cat(
            [m.score_all(users, tables, columns=slice(lo, min(lo + 4, N + 1))) for lo in range(0, N + 1, 4)], 1
        )
        assert torch.allclose(blocks, m.score_all(users, whole), atol=1e-6)


@pytest.mark.parametrize("chunk", [1, 7, 64])
def test_scoring_tables_equal_the_training_lookup_without_copies(chunk, monkeypatch):
    """Every item's views for scoring (no gradient: the id table's own rows, the frozen tables mapped in
    chunks) equal the lookup training differentiates, the graph view included; the id view is the table's
    storage, not a copy."""
    from esrgraph.seq import views as views_module

    rows = views_module.FrozenTableView.all_rows
    monkeypatch.setattr(views_module.FrozenTableView, "all_rows", lambda self: rows(self, chunk=chunk))
    torch.manual_seed(0)
    cfg = SeqConfig(hidden_size=8, num_heads=2, fusion="view")
    m = SeqRecommender(cfg, N, torch.randn(N + 1, 12), torch.randn(N + 1, 8), graph=torch.randn(N + 1, 6)).eval()
    looked_up = m.views.lookup(torch.arange(N + 1))  # what training differentiates
    assert all(torch.allclose(a, b, atol=1e-6) for a, b in zip(looked_up, m.views.tables()))  # with gradients
    with torch.no_grad():
        scored = m.views.tables()
    assert len(scored) == 3 and all(torch.allclose(a, b, atol=1e-6) for a, b in zip(looked_up, scored))
    assert scored[1].data_ptr() == m.views.ids.weight.data_ptr()


def test_collaborative_view_starts_from_pca_and_llm_stays_frozen():
    torch.manual_seed(0)
    pca, llm = torch.randn(N + 1, 8), torch.randn(N + 1, 12)
    m = SeqRecommender(SeqConfig(hidden_size=8, num_heads=1), N, llm, pca)
    assert torch.allclose(m.views.ids.weight[1 : N + 1], pca[1:]) and not m.views.ids.weight[0].any()
    assert "views.semantic.table" in dict(m.named_buffers())
    assert all("table" not in n for n, _ in m.named_parameters())
    plain = SeqRecommender(SeqConfig(hidden_size=8, num_heads=1, variant="plain"), N, llm, pca)
    assert plain.views.names == ["collaborative"] and not torch.allclose(plain.views.ids.weight[1 : N + 1], pca[1:])


def test_teacher_is_the_mean_of_neighbour_encodings_without_grad():
    seqs = [[1, 2, 3, 4, 5], [2, 3, 4, 5], [5, 6, 7], [7, 8, 9, 10, 11, 12], [1, 3, 5, 7]]
    data = SequenceData(make_dataset(seqs, N), max_length=30)
    similar = np.array([[1, 2], [0, 3], [4, 0], [2, 1], [3, 2]])
    m = model()
    m.train()
    distiller = SelfDistillation(similar, SeqConfig().distill.__class__(k=2), data, 1.0)
    teachers = distiller.teachers(m, np.array([0, 3]), torch.device("cpu"))
    assert not teachers.requires_grad and m.training
    m.eval()
    for row, user in enumerate([0, 3]):
        neighbours = [seqs[v][:-2] for v in similar[user]]
        want = m.user_vectors(*padded(neighbours)).mean(0)
        assert torch.allclose(teachers[row], want, atol=1e-5)


def test_epoch_teachers_equal_live_teachers_for_the_same_weights():
    seqs = [[1, 2, 3, 4, 5], [2, 3, 4, 5], [5, 6, 7], [7, 8, 9, 10, 11, 12], [1, 3, 5, 7]]
    data = SequenceData(make_dataset(seqs, N), max_length=30)
    similar = np.array([[1, 2], [0, 3], [4, 0], [2, 1], [3, 2]])
    m = model()
    DistillConfig = SeqConfig().distill.__class__
    live = SelfDistillation(similar, DistillConfig(k=2, teacher="batch"), data, 1.0)
    cached = SelfDistillation(similar, DistillConfig(k=2, teacher="epoch"), data, 1.0)
    cached.begin_epoch(m)
    users = np.array([4, 0, 2])
    assert torch.allclose(
        live.teachers(m, users, torch.device("cpu")), cached.teachers(m, users, torch.device("cpu")), atol=1e-5
    )


def test_bert4rec_inputs_are_never_longer_than_in_training():
    # test histories of 10 items, max_length 5: each is cut to 4 items so the appended mask token
    # takes the last position training uses; the row past it must never be read
    seqs = [list(range(1, 12)), list(range(3, 14)), [5, 6, 7]]
    data = SequenceData(make_dataset(seqs, N), max_length=5)
    m = model("bert4rec", max_length=5)
    with torch.no_grad():
        m.encoder.positions.weight[5] = float("nan")
    evaluator = Evaluator(data, EvalConfig(sampled_negatives=3), 8, torch.device("cpu"))
    metrics = evaluator.evaluate(m, "test", ["full"])["full"]["overall"]
    assert np.isfinite(metrics["NDCG@10"])
    distiller = SelfDistillation(np.array([[1], [0], [0]]), SeqConfig().distill.__class__(k=1), data, 1.0)
    assert torch.isfinite(distiller.teachers(m, np.arange(3), torch.device("cpu"))).all()
