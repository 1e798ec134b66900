"""Cold items: kept or held out in the dataset, left out of the standard protocols, mapped and ranked."""

import json

import numpy as np
import pytest
import torch

from cli.main import main
from esrgraph.config import load_config
from esrgraph.data.dataset import build_dataset
from esrgraph.data.sequences import SequenceData
from esrgraph.eval.protocols import ranks_in_blocks, sampled_negatives
from esrgraph.eval.vectors import VectorScorer
from esrgraph.seq.cold import map_cold_items
from esrgraph.seq.config import SeqConfig
from esrgraph.seq.model import SeqRecommender
from tests.conftest import TINY_ITEMS, TINY_SEQUENCES, tiny_flags, tiny_overrides

COLD_HOLDOUT = ["dataset.cold_items.holdout_share=0.25", "dataset.cold_items.holdout_seed=3"]


def dataset(tiny, tmp_path, *extra):
    return build_dataset(load_config(None, tiny_overrides(tiny, tmp_path / "runs") + list(extra)).dataset)


def test_unseen_metadata_items_are_kept_as_cold_items_after_the_warm_ones(tiny, tmp_path):
    ds = dataset(tiny, tmp_path, "dataset.cold_items.keep_unseen=true")
    assert ds.num_items == 9 and ds.num_warm == 8 and ds.item_ids[-1] == "99"
    assert ds.cold_items.tolist() == [False] * 9 + [True]
    assert ds.item_meta[-1]["title"] == TINY_ITEMS[99]["title"]
    assert ds.item_popularity[-1] == 0 and ds.items.max() <= 8 and ds.tail_items[-1]
    assert dataset(tiny, tmp_path).num_items == 8  # by default they are dropped


def test_held_out_items_leave_every_history_and_become_queries(tiny, tmp_path):
    ds = dataset(tiny, tmp_path, "dataset.cold_items.holdout_share=0.25", "dataset.cold_items.holdout_seed=3")
    held = {ds.item_ids[i - 1] for i in range(ds.num_warm + 1, ds.num_items + 1)}
    assert len(held) == 2 and ds.cold_items[ds.num_warm + 1 :].all()
    histories = {ds.user_ids[u]: [ds.item_ids[i - 1] for i in ds.sequence(u)] for u in range(ds.num_users)}
    for user, items in histories.items():
        assert items == [str(i) for i in TINY_SEQUENCES[user] if str(i) not in held]  # order kept, held-out gone
    expected = []
    for user, items in TINY_SEQUENCES.items():
        if user not in histories:
            continue  # fewer than 3 interactions left: dropped with its queries
        before = 0
        for item in map(str, items):
            if item in held:
                if before:
                    expected.append((user, item, before))
            else:
                before += 1
    got = [(ds.user_ids[u], ds.item_ids[i - 1], int(c)) for u, i, c in ds.cold_queries]
    assert sorted(got) == sorted(expected) and got
    assert ds.stats["cold_items"]["held_out"] == 2 and ds.stats["cold_items"]["queries"] == len(got)
    # the standard protocols never use a cold item as a candidate
    negatives = sampled_negatives(SequenceData(ds, 20), "test", 3, 0)
    assert negatives.max() <= ds.num_warm


def test_cold_id_embeddings_are_mapped_from_the_other_views_and_warm_ones_stay():
    torch.manual_seed(0)
    items, warm, d = 60, 50, 4
    llm = torch.randn(items + 1, 6)
    model = SeqRecommender(
        SeqConfig(hidden_size=d, num_heads=1), items, llm, torch.randn(items + 1, d), num_warm=warm
    ).eval()
    with torch.no_grad():  # make the id view an exact linear function of the semantic view
        semantic = model.views.tables()[0]
        model.views.ids.weight[: items + 1] = semantic @ torch.randn(d, d) + 0.5
    before = model.views.ids.weight.detach().clone()
    target = before[warm + 1 : items + 1].clone()
    with torch.no_grad():
        model.views.ids.weight[warm + 1 : items + 1] = 0.0
    result = map_cold_items(model)
    after = model.views.ids.weight.detach()
    assert result["mapped"] and result["cold_items"] == 10 and result["warm_fit_r2"] > 0.9
    assert torch.equal(after[: warm + 1], before[: warm + 1])
    # an exact linear relation is predicted exactly (up to one norm factor close to 1)
    assert 0.9 < result["norm_scale"] < 1.1
    assert torch.allclose(after[warm + 1 : items + 1], target, atol=0.2)
    ratio = after[warm + 1 : items + 1].norm(dim=1).mean() / before[1 : warm + 1].norm(dim=1).mean()
    assert ratio == pytest.approx(1.0, abs=1e-4)  # the cold embeddings carry the warm ones' mean norm


def test_the_cold_item_protocol_through_the_command_line(tiny, tmp_path, capsys):
    flags = tiny_flags(tiny, tmp_path / "runs", "train.epochs=2", *COLD_HOLDOUT)
    assert main(["train-seq", *flags]) == 0
    out = capsys.readouterr().out
    assert "cold-item protocol:" in out and "| among cold | random |" in out
    cold = json.loads((tmp_path / "runs" / "r" / "eval" / "metrics.json").read_text())["cold_items"]
    assert cold["cold_items"] == 2 and cold["queries"] > 0
    for name in ("among_cold", "among_all"):
        assert 0.0 <= cold["summary"][name]["NDCG@10"]["mean"] <= 1.0
        assert cold["random"][name]["queries"] == cold["queries"]
    # two cold items: HR@10 among them is 1 for every model and baseline
    assert cold["random"]["among_cold"]["HR@10"] == 1.0 and cold["summary"]["among_cold"]["HR@10"]["mean"] == 1.0
    manifest = json.loads((tmp_path / "runs" / "r" / "seq" / "manifest.json").read_text())
    assert manifest["seeds"]["42"]["cold_items"]["mapped"] is True
    assert np.isfinite(cold["summary"]["among_all"]["MRR"]["mean"])


@pytest.mark.parametrize("share", ["-0.1", "1.0"])
def test_a_holdout_share_outside_0_1_is_refused(share):
    from esrgraph.errors import ConfigError

    with pytest.raises(ConfigError, match="dataset.cold_items.holdout_share"):
        load_config(None, [f"dataset.cold_items.holdout_share={share}"])


def test_the_ablation_table_carries_the_cold_item_protocol(tiny, tmp_path):
    flags = tiny_flags(tiny, tmp_path / "runs", "train.epochs=1", *COLD_HOLDOUT)
    assert main(["ablate", "--seeds", "1", "--only", "llmesr", *flags]) == 0
    table = (tmp_path / "runs" / "r" / "ablation" / "ablation.md").read_text()
    assert "## Cold-item protocol" in table and "| among cold | llmesr |" in table and "| among all | random |" in table


@pytest.mark.parametrize("width", [3, 7, 1000])
def test_cold_ranks_in_blocks_match_brute_force_with_ties_and_a_diverged_row(width):
    """Among the other cold items, and among every item outside the history: blocks of any width rank
    as the whole matrix would; ties count against the target; a NaN row has every candidate ahead."""
    rng = np.random.default_rng(width)
    num_warm, num_items, users = 20, 29, 12
    full = [rng.choice(np.arange(1, num_warm + 1), size=8, replace=False) for _ in range(users)]
    queries = np.array([[u, rng.integers(num_warm + 1, num_items + 1), rng.integers(1, 8)] for u in range(users)])
    user_vectors = np.round(rng.normal(size=(users, 3)))  # integers: exact products, many ties
    item_vectors = np.round(rng.normal(size=(num_items + 1, 3)))
    user_vectors[5, 0] = np.nan
    scorer = VectorScorer(torch.tensor(user_vectors).float(), torch.tensor(item_vectors).float())
    vectors = scorer.user_vectors(None, None, torch.from_numpy(queries[:, 0].copy()))
    histories = [full[u][:cut] for u, _, cut in queries]
    targets = torch.from_numpy(queries[:, 1].copy())
    tables = scorer.item_tables()
    among_all, among_cold = ranks_in_blocks(
        scorer, vectors, tables, targets, histories, num_items, width, starts=(0, num_warm + 1)
    )
    with np.errstate(invalid="ignore"):
        table = user_vectors @ item_vectors.T
    for row, (u, target, cut) in enumerate(queries):
        cold_others = [i for i in range(num_warm + 1, num_items + 1) if i != target]
        all_others = [i for i in range(1, num_items + 1) if i != target and i not in set(full[u][:cut].tolist())]
        ahead = [sum(table[u, i] >= table[u, target] for i in others) for others in (cold_others, all_others)]
        expected = (len(cold_others), len(all_others)) if u == 5 else tuple(ahead)
        assert (int(among_cold[row]), int(among_all[row])) == expected
