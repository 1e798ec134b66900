"""Metrics and protocols against brute force, history exclusion, and a perfect scorer."""

import numpy as np
import pytest
import torch

from esrgraph.data.sequences import SequenceData
from esrgraph.eval import protocols
from esrgraph.eval.baselines import FixedScores
from esrgraph.eval.config import EvalConfig
from esrgraph.eval.evaluate import Evaluator
from esrgraph.eval.metrics import aggregate, metrics_from_ranks
from esrgraph.eval.protocols import rank_targets, sampled_negatives
from esrgraph.eval.vectors import VectorScorer
from tests.conftest import make_dataset


class TableScorer:
    """Scores from a fixed [U, N + 1] table; the 'user vector' is the user's row index."""

    appended_tokens = 0

    def __init__(self, table: np.ndarray, data: SequenceData, split: str):
        self.table = torch.as_tensor(table, dtype=torch.float32)

    def user_vectors(self, items, lengths, users=None):
        return users.float().unsqueeze(1)

    def item_tables(self):
        return None

    def score_all(self, users, tables=None, columns=None):
        scores = self.table[users[:, 0].long()].clone()
        scores[:, 0] = -float("inf")
        return scores if columns is None else scores[:, columns]

    def score_items(self, users, items):
        return torch.gather(self.table[users[:, 0].long()], 1, items)


def random_world(seed=0, users=40, items=30):
    rng = np.random.default_rng(seed)
    seqs = [list(rng.choice(np.arange(1, items + 1), size=rng.integers(3, 9), replace=False)) for _ in range(users)]
    data = SequenceData(make_dataset(seqs, items), max_length=50)
    table = rng.normal(size=(users, items + 1))
    return data, table


def brute_full_rank(data, table, user, split):
    cut = {"valid": 2, "test": 1}[split]
    seq = data.full[user]
    target, history = int(seq[-cut]), set(seq[:-cut].tolist())
    others = [i for i in range(1, data.num_items + 1) if i != target and i not in history]
    return sum(table[user, i] >= table[user, target] for i in others)


@pytest.mark.parametrize("split", ["valid", "test"])
def test_full_ranking_matches_brute_force(split):
    data, table = random_world()
    users, targets, ranks = rank_targets(TableScorer(table, data, split), data, split, "full", 7, torch.device("cpu"))
    assert ranks.tolist() == [brute_full_rank(data, table, u, split) for u in users]


def test_full_ranking_with_ties_and_diverged_rows_in_one_batch_matches_brute_force():
    """Ties count against the target; a row whose target scored NaN or ±inf has every candidate ahead,
    while the finite rows of the same batch are ranked as usual."""
    data, table = random_world(3)
    table = np.round(table)  # a few distinct values: many ties
    split, cut = "test", 1
    broken = {4: np.nan, 9: np.inf, 17: -np.inf}
    for user, value in broken.items():
        table[user, data.full[user][-cut]] = value
    users, _, ranks = rank_targets(TableScorer(table, data, split), data, split, "full", 64, torch.device("cpu"))
    for u in users:
        history = set(data.full[u][:-cut].tolist())
        candidates = data.num_items - len(history | {int(data.full[u][-cut])})
        expected = candidates if u in broken else brute_full_rank(data, table, u, split)
        assert ranks[u] == expected


def vectors(users, items):
    return VectorScorer(torch.as_tensor(users).float(), torch.as_tensor(items).float())


@pytest.mark.parametrize("width", [4, 7, 1000])
def test_full_ranking_block_by_block_matches_brute_force_with_ties_and_diverged_rows(width, monkeypatch):
    """Blocks of any width (one item column past a block boundary, a catalogue in one block) rank as
    brute force; ties count against the target across blocks; a row whose target is NaN or infinite
    has every candidate ahead of it."""
    monkeypatch.setattr(protocols, "COLUMNS_PER_PASS", width)
    data, _ = random_world(5)
    rng = np.random.default_rng(5)
    users = np.round(rng.normal(size=(data.num_users, 3)))  # integers: exact products, many ties
    items = np.round(rng.normal(size=(data.num_items + 1, 3)))
    split, cut = "test", 1
    broken = {4: np.nan, 9: np.inf, 17: -np.inf}
    for user, value in broken.items():
        users[user, 0] = value
    with np.errstate(invalid="ignore"):
        table = users @ items.T
    _, targets, ranks = rank_targets(vectors(users, items), data, split, "full", 8, torch.device("cpu"))
    for u in range(data.num_users):
        history = set(data.full[u][:-cut].tolist())
        candidates = data.num_items - len(history | {int(data.full[u][-cut])})
        if u in broken:
            assert ranks[u] == candidates
        else:
            assert ranks[u] == brute_full_rank(data, table, u, split)
    flat = vectors(np.ones((data.num_users, 3)), np.ones((data.num_items + 1, 3)))  # one score for all
    _, _, ranks = rank_targets(flat, data, split, "full", 8, torch.device("cpu"))
    expected = [data.num_items - len(set(data.full[u].tolist())) for u in range(data.num_users)]
    assert ranks.tolist() == expected


def test_real_valued_scores_rank_the_same_in_blocks_as_in_one(monkeypatch):
    """Real-valued scores of 64-wide vectors: the blocked ranks equal one block's."""
    data, _ = random_world(6, users=60, items=300)
    rng = np.random.default_rng(6)
    scorer = vectors(rng.normal(size=(data.num_users, 64)), rng.normal(size=(data.num_items + 1, 64)))
    whole = rank_targets(scorer, data, "valid", "full", 16, torch.device("cpu"))[2]
    monkeypatch.setattr(protocols, "COLUMNS_PER_PASS", 37)
    assert rank_targets(scorer, data, "valid", "full", 16, torch.device("cpu"))[2].tolist() == whole.tolist()


@pytest.mark.parametrize("split", ["valid", "test"])
def test_scores_fixed_for_every_user_rank_as_brute_force_without_a_score_matrix(split, monkeypatch):
    """The popularity floor's way: one score per item; ties count against the target, and histories
    that repeat an item (or hold the target itself) remove each item once."""
    rng = np.random.default_rng(4)
    seqs = [list(rng.choice(np.arange(1, 31), size=rng.integers(3, 12), replace=True)) for _ in range(40)]
    data = SequenceData(make_dataset(seqs, 30), max_length=50)
    row = np.round(rng.normal(size=31) * 2)  # a few distinct values: many ties
    row[0] = -np.inf
    scorer = FixedScores(torch.tensor(row).unsqueeze(1))
    monkeypatch.setattr(FixedScores, "user_vectors", lambda *a, **k: pytest.fail("scored the users"))
    users, targets, ranks = rank_targets(scorer, data, split, "full", 7, torch.device("cpu"))
    table = np.tile(row, (data.num_users, 1))
    assert ranks.tolist() == [brute_full_rank(data, table, u, split) for u in users]
    cut = {"valid": 2, "test": 1}[split]
    assert targets.tolist() == [int(data.full[u][-cut]) for u in users]


def test_sampled_ranking_matches_brute_force():
    data, table = random_world(1)
    negatives = sampled_negatives(data, "test", 10, seed=5)
    _, targets, ranks = rank_targets(
        TableScorer(table, data, "test"), data, "test", "sampled", 8, torch.device("cpu"), negatives
    )
    for u in range(data.num_users):
        assert ranks[u] == sum(table[u, n] >= table[u, targets[u]] for n in negatives[u])


def test_sampled_negatives_are_fixed_unseen_and_distinct():
    data, _ = random_world(2)
    a = sampled_negatives(data, "test", 15, seed=3)
    assert np.array_equal(a, sampled_negatives(data, "test", 15, seed=3))
    assert not np.array_equal(a, sampled_negatives(data, "test", 15, seed=4))
    assert not np.array_equal(a, sampled_negatives(data, "valid", 15, seed=3))
    for u, row in enumerate(a):
        assert len(set(row)) == 15 and not set(row) & set(data.full[u].tolist())


def test_a_sample_of_users_meets_the_negatives_and_ranks_every_user_would():
    """Negatives drawn for a sample of users (in any order) are those users' rows of every user's, and
    ranking the sample with them gives those users' ranks of ranking everyone."""
    data, table = random_world(5)
    every = sampled_negatives(data, "test", 10, seed=2)
    some = np.array([31, 4, 0, 17, 9])
    assert np.array_equal(sampled_negatives(data, "test", 10, seed=2, users=some), every[some])
    scorer, cpu = TableScorer(table, data, "test"), torch.device("cpu")
    _, _, all_ranks = rank_targets(scorer, data, "test", "sampled", 3, cpu, every)
    users, _, ranks = rank_targets(scorer, data, "test", "sampled", 3, cpu, every[some], some)
    assert users.tolist() == some.tolist() and ranks.tolist() == all_ranks[some].tolist()


def test_a_user_with_fewer_unseen_items_than_negatives_meets_each_once():
    # 10 items; the user saw 1..7, so 8, 9 and 10 are the only negatives, each counted once
    data = SequenceData(make_dataset([[1, 2, 3, 4, 5, 6, 7], [1, 2, 3]], 10), max_length=50)
    negatives = sampled_negatives(data, "test", 5, seed=0)
    assert sorted(negatives[0].tolist()) == [0, 0, 8, 9, 10]
    table = np.zeros((2, 11))
    table[0] = [9.0, 0, 0, 0, 0, 0, 0, 0.5, 0.9, 0.1, 0.2]  # item 0 (padding) would outscore the target
    _, _, ranks = rank_targets(
        TableScorer(table, data, "test"), data, "test", "sampled", 4, torch.device("cpu"), negatives
    )
    assert ranks[0] == 1  # only item 8 beats the target 7


def test_history_items_are_excluded_in_full_ranking():
    data, _ = random_world(3)
    table = np.zeros((data.num_users, data.num_items + 1))
    for u, seq in enumerate(data.full):
        table[u, seq[:-1]] = 100.0  # the history scores highest of all
        table[u, seq[-1]] = 1.0  # the target beats every other unseen item
    _, _, ranks = rank_targets(TableScorer(table, data, "test"), data, "test", "full", 16, torch.device("cpu"))
    assert (ranks == 0).all()


def test_perfect_scorer_gets_one_and_constant_scorer_gets_nothing():
    data, _ = random_world(4)
    perfect = np.zeros((data.num_users, data.num_items + 1))
    for u, seq in enumerate(data.full):
        perfect[u, seq[-1]] = 1.0
    evaluator = Evaluator(data, EvalConfig(sampled_negatives=10), 16, torch.device("cpu"))
    result = evaluator.evaluate(TableScorer(perfect, data, "test"), "test")
    for protocol in ("sampled", "full"):
        overall = result[protocol]["overall"]
        assert overall["HR@5"] == overall["NDCG@5"] == overall["NDCG@20"] == overall["MRR"] == 1.0
    flat = evaluator.evaluate(TableScorer(np.zeros_like(perfect), data, "test"), "test")
    assert flat["full"]["overall"]["HR@20"] == 0.0  # ties count against the target


def test_metric_formulas():
    ranks = np.array([0, 1, 4, 9, 10, 50])
    m = metrics_from_ranks(ranks, [5, 10])
    assert m["HR@5"] == pytest.approx(3 / 6) and m["HR@10"] == pytest.approx(4 / 6)
    ndcg10 = (1 + 1 / np.log2(3) + 1 / np.log2(6) + 1 / np.log2(11)) / 6
    assert m["NDCG@10"] == pytest.approx(ndcg10)
    assert m["MRR"] == pytest.approx(np.mean(1 / (ranks + 1)))


def test_groups_partition_users_and_items():
    data, table = random_world(5)
    result = Evaluator(data, EvalConfig(sampled_negatives=5), 16, torch.device("cpu")).evaluate(
        TableScorer(table, data, "test"), "test", ["full"]
    )["full"]
    assert result["tail_users"]["users"] + result["head_users"]["users"] == data.num_users
    assert result["tail_items"]["users"] + result["head_items"]["users"] == data.num_users
    mixed = (
        result["tail_users"]["HR@10"] * result["tail_users"]["users"]
        + result["head_users"]["HR@10"] * result["head_users"]["users"]
    ) / data.num_users
    assert mixed == pytest.approx(result["overall"]["HR@10"])


def test_aggregate_mean_and_sample_std():
    runs = [{"full": {"overall": {"users": 3, "HR@10": v}}} for v in (0.1, 0.2, 0.3)]
    out = aggregate(runs)["full"]["overall"]["HR@10"]
    assert out["mean"] == pytest.approx(0.2) and out["std"] == pytest.approx(0.1)


@pytest.mark.parametrize("width", [1, 3, 7, 50])
def test_the_top_k_kept_across_blocks_is_the_top_k_of_the_whole_masked_matrix(width):
    """Per row the k best columns, best first, whatever the block width: excluded columns, the padding
    column 0 and columns outside ``allowed`` never come back; a row left with fewer than k candidates
    ends in -inf."""
    from esrgraph.eval.blocks import top_k_in_blocks

    rng = np.random.default_rng(width)
    scores = torch.tensor(rng.normal(size=(6, 23)), dtype=torch.float32)  # distinct: one right order
    rows = torch.tensor([0, 0, 2, 5, 5, 5])
    columns = torch.tensor([3, 22, 1, 7, 8, 9])
    allowed = torch.ones(23, dtype=torch.bool)
    allowed[[4, 5]] = False
    allowed[10:] = torch.from_numpy(rng.random(13) > 0.3)
    masked = scores.clone()
    masked[rows, columns] = -float("inf")
    masked[:, 0] = -float("inf")
    masked[:, ~allowed] = -float("inf")
    for k in (1, 5, 22):
        values, found = top_k_in_blocks(lambda lo, hi: scores[:, lo:hi].clone(), 23, k, (rows, columns), width, allowed)
        expected = torch.topk(masked, k, dim=1)
        assert torch.equal(values, expected.values)
        finite = values.isfinite()
        assert torch.equal(found[finite], expected.indices[finite])
        assert not bool(((found == 0) | ~allowed[found])[finite].any())
    assert int(finite.sum(1).min()) < 22  # k = 22: every row ran out of candidates
    with pytest.raises(ValueError, match="between 1 and 22"):
        top_k_in_blocks(lambda lo, hi: scores[:, lo:hi], 23, 23, (rows, columns), width)
