"""Results that can be trusted: a diverged model earns nothing, damaged caches and checkpoints are named,
and a bad CONFIG is one line."""

import json
import logging

import numpy as np
import pytest
import torch

from cli.main import main
from esrgraph.eval.config import EvalConfig
from esrgraph.eval.evaluate import Evaluator
from esrgraph.eval.protocols import rank_targets, sampled_negatives
from esrgraph.text.cache import EmbeddingCache
from tests.conftest import as_flags, tiny_flags, tiny_overrides
from tests.test_eval_metrics import TableScorer, brute_full_rank, random_world

CPU = torch.device("cpu")


# ---------------------------------------------------------------- NaN scores


def ranks(table, data, protocol, negatives=None):
    scorer = TableScorer(table, data, "test")
    return rank_targets(scorer, data, "test", protocol, 7, CPU, negatives)


def full_candidates(data, user):
    """Items the full protocol ranks the test target against: all but the padding, target and history."""
    return data.num_items - len(set(data.full[user][:-1].tolist())) - 1


def test_a_model_scoring_nan_ranks_every_target_last_and_scores_zero():
    data, table = random_world(3)
    table[:] = np.nan
    negatives = sampled_negatives(data, "test", 10, seed=1)
    users, _, sampled = ranks(table, data, "sampled", negatives)
    assert sampled.tolist() == [10] * data.num_users
    users, _, full = ranks(table, data, "full")
    assert full.tolist() == [full_candidates(data, u) for u in users]
    metrics = Evaluator(data, EvalConfig(sampled_negatives=10, ks=[5, 10]), 8, CPU).evaluate(
        TableScorer(table, data, "test"), "test"
    )
    for protocol in ("sampled", "full"):
        overall = metrics[protocol]["overall"]
        assert overall["HR@10"] == 0.0 and overall["NDCG@10"] == 0.0 and overall["HR@5"] == 0.0, protocol


@pytest.mark.parametrize("value", [np.nan, np.inf, -np.inf])
def test_a_non_finite_target_score_ranks_behind_every_candidate(value):
    data, table = random_world(4)
    targets = np.array([int(seq[-1]) for seq in data.full])
    table[np.arange(data.num_users), targets] = value
    negatives = sampled_negatives(data, "test", 10, seed=2)
    assert ranks(table, data, "sampled", negatives)[2].tolist() == [10] * data.num_users
    users, _, full = ranks(table, data, "full")
    assert full.tolist() == [full_candidates(data, u) for u in users]


def test_a_nan_candidate_counts_against_the_target():
    data, table = random_world(5)
    negatives = sampled_negatives(data, "test", 10, seed=3)
    targets = np.array([int(seq[-1]) for seq in data.full])
    table[np.arange(data.num_users), targets] = 0.0  # half the negatives above, half below
    expected_full = [brute_full_rank(data, table, u, "test") for u in range(data.num_users)]
    expected_sampled = [int((table[u, negatives[u]] >= 0.0).sum()) for u in range(data.num_users)]
    below = [next(n for n in negatives[u] if table[u, n] < 0.0) for u in range(data.num_users)]
    table[np.arange(data.num_users), below] = np.nan  # one negative per user that ranked below the target
    assert ranks(table, data, "sampled", negatives)[2].tolist() == [r + 1 for r in expected_sampled]
    users, _, full = ranks(table, data, "full")
    assert full.tolist() == [expected_full[u] + 1 for u in users]


# ---------------------------------------------------------------- CONFIG


@pytest.mark.parametrize("command", ["prepare", "train-seq", "pipeline"])
def test_a_directory_as_config_is_one_line(tmp_path, capsys, command):
    assert main([command, str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert err == f"esr: error: {tmp_path}: is a directory, expected a YAML config file\n"
    assert list(tmp_path.iterdir()) == []


# ---------------------------------------------------------------- text cache


def test_a_damaged_text_cache_is_dropped_with_a_warning(tmp_path, caplog):
    cache = EmbeddingCache(tmp_path, "model", dim=3)
    cache.put_many(["a", "b"], np.arange(6, dtype=np.float32).reshape(2, 3))
    cache.flush()
    [chunk] = cache.chunks()
    whole = chunk.read_bytes()
    for damaged in (whole[: len(whole) // 2], b"not a zip file", b""):
        chunk.write_bytes(damaged)
        caplog.clear()
        with caplog.at_level(logging.WARNING):
            assert EmbeddingCache(tmp_path, "model", dim=3).rows == {}
        assert f"{chunk}: damaged text cache" in caplog.text and "encoded again" in caplog.text
        assert not chunk.exists()
    chunk.write_bytes(whole)
    again = EmbeddingCache(tmp_path, "model", dim=3)
    assert sorted(again.rows) == ["a", "b"] and again.rows["b"].tolist() == [3.0, 4.0, 5.0]


def embed_args(tiny, root, name):
    extra = [f"run.name={name}", "embed.max_tokens=64", "embed.similar_users=3", "embed.users=text"]
    return ["embed", *as_flags(tiny_overrides(tiny, root) + extra)]


def test_embed_recomputes_the_entries_of_a_truncated_text_cache(tiny, tmp_path, caplog):
    root = tmp_path / "runs"
    assert main(embed_args(tiny, root, "first")) == 0
    chunks = sorted((root / ".cache" / "text").glob("*/chunk-*.npz"))
    assert len(chunks) == 2  # item texts, then user texts

    def cached_keys():
        found = []
        for chunk in sorted((root / ".cache" / "text").glob("*/chunk-*.npz")):
            with np.load(chunk) as part:
                found += part["keys"].tolist()
        return sorted(found)

    keys = cached_keys()
    chunks[1].write_bytes(chunks[1].read_bytes()[:1000])
    with caplog.at_level(logging.WARNING):
        assert main(embed_args(tiny, root, "second")) == 0  # another run name: the embed stage encodes again
    assert f"{chunks[1]}: damaged text cache" in caplog.text
    first, second = (json.loads((root / n / "embed" / "manifest.json").read_text()) for n in ("first", "second"))
    assert first["artifacts"] == second["artifacts"]  # the same embeddings, encoded again
    assert chunks[0].exists() and cached_keys() == keys and len(keys) == 16  # 8 item and 8 user texts


# ---------------------------------------------------------------- checkpoints


def seq_args(tiny, root, *extra):
    return tiny_flags(tiny, root, "train.epochs=2", "train.seeds=[1]", "seq.variant=plain", "gnn.epochs=2", *extra)


@pytest.fixture
def damaged_checkpoint(tiny, tmp_path, monkeypatch):
    """A training of seed 1 interrupted after epoch 1, its checkpoint file then truncated."""
    from esrgraph.training.loop import TrainingLoop

    save = TrainingLoop._save

    def save_then_interrupt(self, result):
        save(self, result)
        raise KeyboardInterrupt

    root = tmp_path / "runs"
    with monkeypatch.context() as patch:
        patch.setattr(TrainingLoop, "_save", save_then_interrupt)
        assert main(["train-seq"] + seq_args(tiny, root)) == 130
    path = root / "r" / "seq.checkpoints" / "seed-1" / "epoch-00001.pt"
    path.write_bytes(path.read_bytes()[:100])
    return root, path


def test_resume_from_a_damaged_checkpoint_is_one_line(tiny, damaged_checkpoint, capsys):
    root, path = damaged_checkpoint
    capsys.readouterr()
    assert main(["train-seq", "--resume"] + seq_args(tiny, root)) == 2
    err = capsys.readouterr().err
    assert err == (
        f"esr: error: {path}: checkpoint file damaged (its sha256 differs from the one in checkpoint.json); "
        "run without --resume to start over\n"
    )
    assert not (root / "r" / "seq").exists() and len(path.read_bytes()) == 100  # nothing written, nothing removed


def test_the_pipeline_starts_a_seed_with_a_damaged_checkpoint_over(tiny, damaged_checkpoint, caplog):
    root, path = damaged_checkpoint
    with caplog.at_level(logging.WARNING):
        assert main(["pipeline"] + seq_args(tiny, root)) == 0
    assert f"train-seq: {path}: checkpoint file damaged" in caplog.text and "starting over" in caplog.text
    history = json.loads((root / "r" / "seq" / "history-seed1.json").read_text())
    assert [epoch["epoch"] for epoch in history] == [1, 2]  # trained from the first epoch
    assert (root / "r" / "seq" / "model-seed1.pt").stat().st_size > 0
    assert not (root / "r" / "seq.checkpoints").exists()
    assert json.loads((root / "r" / "eval" / "metrics.json").read_text())["seeds"] == [1]
