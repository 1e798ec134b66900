import json

import numpy as np
import pytest

from esrgraph.config import load_config
from esrgraph.data.dataset import build_dataset
from esrgraph.data.store import load_dataset, save_dataset
from esrgraph.errors import EsrError, InputError
from tests.conftest import TINY_SEQUENCES, needs_shared


def test_ids_split_and_filtering(tiny_config):
    ds = build_dataset(tiny_config().dataset)
    assert ds.user_ids == [f"u{i}" for i in range(1, 9)]  # u9 has 2 interactions: dropped
    assert ds.stats["users_dropped_short"] == 1
    assert ds.item_ids == [str(i) for i in range(1, 9)]  # numeric order; item 99 was never bought
    # source ids 1..8 map to canonical ids 1..8 here, so sequences read back unchanged
    for u, raw in enumerate(ds.user_ids):
        assert ds.sequence(u).tolist() == TINY_SEQUENCES[raw]
        assert ds.train_sequence(u).tolist() == TINY_SEQUENCES[raw][:-2]
        assert ds.valid_target(u) == TINY_SEQUENCES[raw][-2]
        assert ds.test_target(u) == TINY_SEQUENCES[raw][-1]
    assert ds.item_popularity[0] == 0 and ds.item_popularity.sum() == ds.stats["interactions"] == 36


def test_join_coverage_counts(tiny_config):
    ds = build_dataset(tiny_config().dataset)
    join = ds.stats["join"]
    assert join["key_type"] == "int" and join["items_with_metadata"] == 8
    assert join["metadata_without_interactions_dropped"] == 1  # item 99
    assert ds.item_meta[2]["title"] == "Face cream"


def test_join_with_offset_keeps_items_without_metadata(tiny_config):
    # metadata key = item id + 1: items 1..7 find the records of 2..8, item 8 finds none
    # (offset 0 joins all 8: the offset check would stop this, so it is turned off)
    ds = build_dataset(tiny_config("dataset.join.offset=1", "dataset.join.check_offset=false").dataset)
    join = ds.stats["join"]
    assert join["items_with_metadata"] == 7 and join["items_without_metadata"] == 1
    assert ds.item_meta[0]["title"] == "Blue nail polish" and ds.item_meta[7] is None
    assert join["metadata_without_interactions_dropped"] == 2  # records 1 and 99


def test_string_join_through_raw_dump(tiny, tmp_path):
    cfg = load_config(
        None,
        [
            f"dataset.interactions.path={tiny['reviews']}",
            f"dataset.metadata.path={tiny['items_jsonl']}",
            "dataset.metadata.key=asin",
            "dataset.metadata.fields.categories=category",
        ],
    )
    ds = build_dataset(cfg.dataset)
    assert ds.stats["join"]["key_type"] == "str" and ds.stats["join"]["coverage"] == 1.0
    assert ds.item_ids[0] == "A001" and ds.item_meta[0]["categories"] == ["Beauty", "Makeup", "Nails"]


def test_int_key_type_rejects_non_integer_ids(tiny):
    cfg = load_config(
        None,
        [f"dataset.interactions.path={tiny['reviews']}", "dataset.metadata.path=null", "dataset.join.key_type=int"],
    )
    with pytest.raises(EsrError, match="item id 'A00\\d' is not an integer, but dataset.join.key_type is int"):
        build_dataset(cfg.dataset)


def test_integer_ids_written_two_ways_are_refused_unless_compared_as_strings(tmp_path):
    seqs = tmp_path / "s.txt"
    seqs.write_text("u1 1 2 03\nu2 3 1 2\n")
    cfg = load_config(None, [f"dataset.interactions.path={seqs}", "dataset.metadata.path=null"])
    with pytest.raises(EsrError, match="s.txt: item ids '03' and '3' are the same integer"):
        build_dataset(cfg.dataset)
    ds = build_dataset(
        load_config(
            None, [f"dataset.interactions.path={seqs}", "dataset.metadata.path=null", "dataset.join.key_type=str"]
        ).dataset
    )
    assert ds.item_ids == ["1", "2", "03", "3"]  # numeric order, the two kept apart


def test_pareto_groups_by_share(tiny_config):
    ds = build_dataset(tiny_config().dataset)
    lengths = ds.lengths() - 1  # history before the test item
    threshold = ds.stats["groups"]["tail_user_max_length"]
    assert np.array_equal(ds.tail_users, lengths <= threshold)
    assert (lengths <= threshold).mean() >= 0.8 and (lengths < threshold).mean() < 0.8
    pop = ds.item_popularity[1:]
    item_threshold = ds.stats["groups"]["tail_item_max_popularity"]
    assert np.array_equal(ds.tail_items[1:], pop <= item_threshold) and not ds.tail_items[0]
    assert (pop <= item_threshold).mean() >= 0.8 and (pop < item_threshold).mean() < 0.8


def test_fixed_group_thresholds(tiny_config):
    ds = build_dataset(
        tiny_config("dataset.groups.tail_user_max_length=3", "dataset.groups.tail_item_max_popularity=4").dataset
    )
    assert ds.tail_users.tolist() == [(len(TINY_SEQUENCES[u]) - 1) <= 3 for u in ds.user_ids]
    assert ds.tail_items[1:].tolist() == (ds.item_popularity[1:] <= 4).tolist()


def test_save_load_roundtrip(tiny_config, tmp_path):
    ds = build_dataset(tiny_config().dataset)
    save_dataset(ds, tmp_path)
    back = load_dataset(tmp_path)
    assert back.user_ids == ds.user_ids and back.item_ids == ds.item_ids
    assert np.array_equal(back.items, ds.items) and np.array_equal(back.tail_users, ds.tail_users)
    assert back.item_meta == ds.item_meta and back.stats == json.loads(json.dumps(ds.stats))


@needs_shared
@pytest.mark.parametrize(
    "name, users, items, interactions",
    [
        ("amazon-beauty", 22363, 12101, 198502),
        ("amazon-giftcards-raw", 458, 148, 2968),  # 2,972 rows, 4 repeating the item right before them
    ],
)
def test_real_datasets_through_config(name, users, items, interactions):
    from pathlib import Path

    cfg = load_config(Path(__file__).resolve().parents[1] / "configs" / f"{name}.yaml")
    ds = build_dataset(cfg.dataset)
    assert (ds.num_users, ds.num_items, ds.stats["interactions"]) == (users, items, interactions)
    assert ds.stats["join"]["coverage"] == 1.0
    assert 0.8 <= ds.stats["tail_user_share"] < 0.9 and 0.8 <= ds.stats["tail_item_share"] < 0.9


REPEATED = "u1 1\nu1 1\nu1 2\nu1 1\nu1 3\nu2 4\nu2 4\nu2 5\nu2 6\nu2 5\nu3 7\nu3 7\nu3 8\n"


@pytest.mark.parametrize(
    "policy, sequences, dropped",
    [
        ("drop_consecutive", {"u1": ["1", "2", "1", "3"], "u2": ["4", "5", "6", "5"]}, 3),
        ("drop", {"u1": ["1", "2", "3"], "u2": ["4", "5", "6"]}, 5),
        ("keep", {"u1": ["1", "1", "2", "1", "3"], "u2": ["4", "4", "5", "6", "5"], "u3": ["7", "7", "8"]}, 0),
    ],
)
def test_repeated_interactions_follow_the_stated_policy(tmp_path, policy, sequences, dropped):
    """u3's only repeat is consecutive: dropping it leaves 2 items, too few, so u3 goes with it."""
    path = tmp_path / "inter.txt"
    path.write_text(REPEATED)
    overrides = [f"dataset.interactions.path={path}", "dataset.metadata.path=null", f"dataset.duplicates={policy}"]
    ds = build_dataset(load_config(None, overrides).dataset)
    read = {user: [ds.item_ids[i - 1] for i in ds.sequence(u)] for u, user in enumerate(ds.user_ids)}
    assert read == sequences
    counts = ds.stats["duplicates"]
    assert counts == {"policy": policy, "rows_read": 13, "repeats": 5, "consecutive": 3, "dropped": dropped}
    assert ds.item_popularity.sum() == sum(map(len, sequences.values()))


def test_the_prepare_summary_reports_the_repeats_and_the_policy(tmp_path, capsys):
    from cli.main import main

    path = tmp_path / "inter.txt"
    path.write_text(REPEATED)
    args = ["prepare", "-o", f"dataset.interactions.path={path}", "-o", "dataset.metadata.path=null"]
    assert main([*args, "-o", f"run.root={tmp_path / 'runs'}"]) == 0
    out = capsys.readouterr().out
    assert "interactions              8   (read 13)" in out
    assert (
        "repeats                   3   dropped (right after the same item); 2 later repeats kept; "
        "dataset.duplicates=drop_consecutive" in out
    )


def test_statistics_prepared_before_the_policy_still_print(tiny_config):
    from esrgraph.data.report import describe

    stats = build_dataset(tiny_config().dataset).stats
    assert stats["duplicates"]["repeats"] == 0 and "repeats  " in describe(stats)
    del stats["duplicates"]
    assert "repeats" not in describe(stats) and "interactions             36\n" in describe(stats) + "\n"


def test_loaded_metadata_is_read_on_first_use_and_a_damaged_line_is_named(tiny_config, tmp_path):
    ds = build_dataset(tiny_config().dataset)
    save_dataset(ds, tmp_path)
    back = load_dataset(tmp_path)
    assert back.item_meta._records is None  # training never reads the metadata: nothing parsed yet
    assert back.item_meta[2] == ds.item_meta[2] and len(back.item_meta) == len(ds.item_meta)
    path = tmp_path / "item_meta.jsonl"
    lines = path.read_text().splitlines()
    lines[4] = "{not json"
    path.write_text("\n".join(lines) + "\n")
    with pytest.raises(InputError, match=r"item_meta.jsonl, line 5: not a JSON record"):
        list(load_dataset(tmp_path).item_meta)
