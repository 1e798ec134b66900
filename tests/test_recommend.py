"""`esr recommend` and the Python API on a tiny trained run: ids, titles, seen items, unknown ids, files."""

import csv
import json
import re
from pathlib import Path

import pytest

from cli.main import main
from tests.conftest import TINY_ITEMS, TINY_SEQUENCES, tiny_flags

QUICK = [
    "train.epochs=2",
    "train.seeds=[3]",
]
README = Path(__file__).resolve().parents[1] / "README.md"


@pytest.fixture
def trained(tiny, tmp_path):
    """A tiny run trained through the CLI; returns the -o flags naming its config."""
    flags = tiny_flags(tiny, tmp_path / "runs", *QUICK)
    assert main(["train-seq", *flags]) == 0
    return flags


def recommend(capsys, flags, *args) -> str:
    capsys.readouterr()
    assert main(["recommend", *flags, *args]) == 0
    return capsys.readouterr().out


def parse(text: str) -> dict[str, list[str]]:
    """The readable listing as {user: [item ids in rank order]}."""
    out, user = {}, None
    for line in text.splitlines():
        if line.startswith("user "):
            user = line[5:].partition(": (")[0].rstrip(":")  # "user cold: (no item the model knows: ...)"
            out[user] = []
        elif m := re.match(r"\s+\d+\. (\S+)\s", line):
            out[user].append(m.group(1))
    return out


def test_known_users_get_unseen_items_with_titles(trained, capsys):
    text = recommend(capsys, trained, "--user", "u1", "--user", "u3", "-k", "3")
    ranked = parse(text)
    assert list(ranked) == ["u1", "u3"]
    assert len(ranked["u1"]) == 3 and len(ranked["u3"]) == 2  # u3 saw 6 of the 8 items: 2 are left
    for user, items in ranked.items():
        assert not set(items) & {str(i) for i in TINY_SEQUENCES[user]}  # seen items never appear
    assert TINY_ITEMS[int(ranked["u1"][0])]["title"] in text
    # with seen items allowed, u1 (who saw 5 of 8 items) can be offered them again
    every = parse(recommend(capsys, trained, "--user", "u1", "-k", "8", "--include-seen"))["u1"]
    assert sorted(every) == [str(i) for i in range(1, 9)]


def test_new_histories_report_unknown_ids(trained, capsys, tmp_path):
    path = tmp_path / "h.jsonl"
    path.write_text(
        json.dumps({"id": "new", "items": ["1", "2", "999"]})
        + "\n"
        + json.dumps({"id": "cold", "items": ["nope"]})
        + "\n"
    )
    assert main(["recommend", *trained, "--history-file", str(path), "-k", "2"]) == 0
    captured = capsys.readouterr()
    ranked = parse(captured.out)
    assert len(ranked["new"]) == 2 and not {"1", "2"} & set(ranked["new"])
    assert len(ranked["cold"]) == 2  # nothing known: the most popular items
    assert "2 history item ids are unknown to the model and were left out (e.g. 999, nope)" in captured.err
    assert "user cold: (no item the model knows: ranked by popularity)" in captured.out
    assert "user new:\n" in captured.out
    assert (
        "esr: warning: 1 histories hold no item the model knows (e.g. cold): ranked by popularity, "
        "their rows marked fallback=popularity" in captured.err
    )
    out = tmp_path / "h.csv"
    assert main(["recommend", *trained, "--history-file", str(path), "-k", "2", "-O", str(out)]) == 0
    with open(out) as handle:
        fallback = {(row["user"], row["fallback"]) for row in csv.DictReader(handle)}
    assert fallback == {("new", ""), ("cold", "popularity")}


def popularity() -> dict[str, int]:
    """Interactions per item of the users the tiny dataset keeps (u9 has too few)."""
    counts: dict[str, int] = {}
    for user, items in TINY_SEQUENCES.items():
        for item in items if user != "u9" else []:
            counts[str(item)] = counts.get(str(item), 0) + 1
    return counts


def test_an_empty_history_is_ranked_by_popularity_with_every_row_marked(trained, tmp_path, caplog):
    from esrgraph.api import load_recommender

    rec = load_recommender(tmp_path / "runs" / "r")
    rows = rec.recommend([], k=3)
    counts = popularity()
    assert [r["score"] for r in rows] == sorted(counts.values(), reverse=True)[:3]
    assert all(r["score"] == counts[r["item"]] and r["fallback"] == "popularity" for r in rows)
    assert "1 histories hold no item the model knows: ranked by popularity" in caplog.text
    assert rec.recommend(["nope"], k=3, warn=False) == rows  # only unknown ids: the same
    assert "fallback" not in rec.recommend(["1"], k=3)[0]  # the model's rows carry no mark


@pytest.mark.parametrize(
    "call, message",
    [
        (lambda rec: rec.recommend(["1"], k=-5), "k: expected an integer >= 1 (as -k), got -5"),
        (lambda rec: rec.recommend(["1"], k=0), "k: expected an integer >= 1 (as -k), got 0"),
        (lambda rec: rec.recommend(["1"], k=2.0), "k: expected an integer >= 1 (as -k), got 2.0"),
        (lambda rec: rec.recommend("12"), "history: expected a list of item ids, got str"),
        (lambda rec: rec.recommend([1.5]), "history[0]: item ids are strings or integers, got 1.5"),
        (lambda rec: rec.recommend(["1"], exclude_seen="no"), "exclude_seen: expected True or False, got 'no'"),
        (lambda rec: rec.recommend(["1"], candidates=[]), "candidates: an empty list leaves nothing to rank"),
        (lambda rec: rec.recommend_users("u1", k=3), "user_ids: expected a list of user ids, got str"),
        (lambda rec: rec.recommend_users(["u1"], k=0), "k: expected an integer >= 1 (as -k), got 0"),
        (lambda rec: next(rec.recommend_all(k=-1)), "k: expected an integer >= 1 (as -k), got -1"),
        (lambda rec: rec.score(["1"], "2"), "items: expected a list of item ids, got str"),
        (lambda rec: rec.score([], ["2"]), "history: no item the model knows, so the model has no score"),
    ],
)
def test_the_python_api_checks_its_arguments_as_the_cli_does(trained, tmp_path, call, message):
    from esrgraph.api import load_recommender
    from esrgraph.errors import ArgumentError, EsrError

    rec = load_recommender(tmp_path / "runs" / "r")
    with pytest.raises(ArgumentError) as err:
        call(rec)
    assert message in str(err.value)
    assert isinstance(err.value, EsrError) and isinstance(err.value, ValueError)
    assert rec.recommend([1, "2"], k=1)  # integer ids are read as their text


def test_every_user_to_jsonl_and_csv_and_candidates(trained, capsys, tmp_path):
    out = tmp_path / "all.jsonl"
    recommend(capsys, trained, "--all", "-k", "2", "-O", str(out))
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    users = {u for u, s in TINY_SEQUENCES.items() if len(s) >= 3}
    assert {r["user"] for r in rows} == users and all(len(r["items"]) <= 2 for r in rows)
    assert all(set(r["items"][0]) == {"item", "score", "title"} for r in rows)
    candidates = tmp_path / "c.txt"
    candidates.write_text("7\n8\n")
    table = tmp_path / "u.csv"
    recommend(capsys, trained, "--user", "u2", "-k", "5", "--candidates", str(candidates), "-O", str(table))
    with open(table) as handle:
        lines = list(csv.DictReader(handle))
    assert [row["item"] for row in lines] and {row["item"] for row in lines} <= {"7", "8"}
    assert [int(row["rank"]) for row in lines] == list(range(1, len(lines) + 1))


def test_a_missing_output_folder_is_an_error_unless_create_dirs_asks_for_it(trained, tmp_path, capsys):
    out = tmp_path / "missing" / "dir" / "r.jsonl"
    capsys.readouterr()
    assert main(["recommend", *trained, "--all", "-O", str(out)]) == 2
    err = capsys.readouterr().err
    assert err == f"esr: error: {out.parent}: no such folder for the output r.jsonl; create it, or pass --create-dirs\n"
    assert not (tmp_path / "missing").exists()
    assert main(["recommend", *trained, "--all", "-O", str(out), "--create-dirs"]) == 0
    assert len(out.read_text().splitlines()) == 8  # the 8 users the tiny dataset keeps
    not_a_folder = tmp_path / "h.txt"
    not_a_folder.write_text("")
    capsys.readouterr()
    assert main(["recommend", *trained, "--all", "-O", str(not_a_folder / "r.csv")]) == 2
    assert capsys.readouterr().err == f"esr: error: {not_a_folder}: not a folder, so r.csv cannot be written in it\n"


def test_folders_created_for_an_output_that_fails_are_removed(tmp_path):
    from esrgraph.recommend.io import write_rows

    def rows():
        yield "u1", [{"item": "1", "score": 1.0, "title": None}]
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        write_rows(tmp_path / "a" / "b" / "r.jsonl", rows(), create_dirs=True)
    assert list(tmp_path.iterdir()) == []


def test_without_a_trained_model_it_is_one_line_and_exit_2(tiny, tmp_path, capsys):
    flags = tiny_flags(tiny, tmp_path / "runs", *QUICK)
    assert main(["recommend", *flags, "--user", "u1"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "no model trained with this config" in err
    assert main(["recommend", *flags, "--user", "u1", "--all"]) == 2  # two kinds of user at once


def test_unknown_users_are_named(trained, capsys):
    assert main(["recommend", *trained, "--user", "zz"]) == 2
    assert "user id(s) unknown to the dataset (e.g. zz)" in capsys.readouterr().err


def test_the_readme_example_runs_and_agrees_with_the_command_line(trained, capsys, tmp_path):
    code = README.read_text().split("```python\n", 1)[1].split("```", 1)[0]
    run_dir = tmp_path / "runs" / "r"
    code = code.replace('"runs/amazon-scientific-quick"', repr(str(run_dir))).replace('["0"]', '["u1"]')
    code = code.replace('["10", "20"]', '["1", "2"]')  # the tiny catalogue's ids (a history of none has no score)
    namespace: dict = {}
    exec(compile(code, "README example", "exec"), namespace)
    rec = namespace["rec"]
    cli = parse(recommend(capsys, trained, "--user", "u1", "-k", "5"))["u1"]
    ranked = rec.recommend_users(["u1"], k=5)[0]
    assert [r["item"] for r in ranked] == cli
    # scoring u1's history directly gives the scores the ranking was made of
    history = [str(i) for i in TINY_SEQUENCES["u1"]]
    assert rec.score(history, cli) == pytest.approx([r["score"] for r in ranked], abs=1e-5)


def test_the_approximate_index_finds_the_exact_top_k_when_it_searches_every_list():
    import numpy as np
    import torch

    from esrgraph.recommend.index import ApproximateIndex, ExactIndex, recall_at_k

    rng = np.random.default_rng(0)
    table = torch.from_numpy(rng.normal(size=(2001, 16)).astype(np.float32))
    users = torch.from_numpy(rng.normal(size=(50, 16)).astype(np.float32))
    exact_scores, exact_ids = ExactIndex(table).search(users, 10)
    assert exact_ids.min() >= 1  # row 0 is padding, never returned
    full = ApproximateIndex(table, lists=8, probes=8)  # every list searched: exact
    scores, ids = full.search(users, 10)
    assert recall_at_k(exact_ids, ids) == 1.0 and np.allclose(scores, exact_scores, atol=1e-4)
    partial = ApproximateIndex(table, lists=64, probes=2)
    assert 0.0 < recall_at_k(exact_ids, partial.search(users, 10)[1]) < 1.0


def test_approximate_recommendations_match_exact_ones_on_a_small_catalogue(trained, capsys):
    exact = parse(recommend(capsys, trained, "--user", "u1", "--user", "u5", "-k", "3"))
    assert parse(recommend(capsys, trained, "--user", "u1", "--user", "u5", "-k", "3", "--approximate")) == exact


def test_recommendations_in_blocks_of_items_equal_one_block(trained, capsys, monkeypatch, tmp_path):
    """Blocks of 1, 2 and 3 items (the tiny catalogue split at every boundary) recommend as one block
    does: the same items in the same order with the same scores, seen items and the candidates' limit
    kept across blocks, and a history nothing is known of ranked by popularity."""
    from esrgraph.recommend import recommender

    def listings():
        histories = tmp_path / "h.jsonl"
        histories.write_text('{"id": "new", "items": ["1", "2"]}\n{"id": "cold", "items": ["nope"]}\n')
        candidates = tmp_path / "c.txt"
        candidates.write_text("3\n5\n7\n8\n")
        return [
            recommend(capsys, trained, "--all", "-k", "4"),
            recommend(capsys, trained, "--history-file", str(histories), "-k", "20"),
            recommend(capsys, trained, "--user", "u2", "-k", "3", "--candidates", str(candidates)),
        ]

    whole = listings()
    assert parse(whole[0]) and parse(whole[1])["cold"] and parse(whole[2])["u2"]
    for width in (1, 2, 3):
        monkeypatch.setattr(recommender, "COLUMNS_PER_PASS", width)
        assert listings() == whole
