"""`esr embed` end to end on the tiny dataset with the real bundled model."""

import json

import numpy as np
import pytest

from cli.main import main
from esrgraph.text import encoder as encoder_module
from tests.conftest import tiny_overrides

EMBED_ARGS = ["-o", "embed.max_tokens=64", "-o", "seq.hidden_size=4", "-o", "embed.similar_users=3"]


def embed(tiny, root, *extra):
    args = ["embed"]
    for o in tiny_overrides(tiny, root) + list(extra):
        args += ["-o", o]
    assert main(args + EMBED_ARGS) == 0
    run_dirs = [p for p in root.iterdir() if not p.name.startswith(".")]
    assert len(run_dirs) == 1
    return run_dirs[0] / "embed"


@pytest.fixture
def encode_calls(monkeypatch):
    calls = []
    original = encoder_module.TextEncoder.encode_batch

    def counting(self, texts):
        calls.append(len(texts))
        return original(self, texts)

    monkeypatch.setattr(encoder_module.TextEncoder, "encode_batch", counting)
    return calls


def test_embed_artifacts(tiny, tmp_path, capsys):
    out = embed(tiny, tmp_path / "runs", "embed.users=text")
    item_llm, item_pca = np.load(out / "item_llm.npy"), np.load(out / "item_pca.npy")
    users, similar = np.load(out / "user_llm.npy"), np.load(out / "similar_users.npy")
    assert item_llm.shape == (9, 384) and item_pca.shape == (9, 4) and users.shape == (8, 384)
    assert not item_llm[0].any() and not item_pca[0].any()
    assert np.allclose(np.linalg.norm(item_llm[1:], axis=1), 1, atol=1e-3)  # the model normalises
    assert similar.shape == (8, 3) and not (similar == np.arange(8)[:, None]).any()
    # items 1 and 2 (two OPI nail polishes) are closer to each other than to shampoo (5)
    assert item_llm[1] @ item_llm[2] > item_llm[1] @ item_llm[5]
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["texts"] == {"items": 8, "users": 8} and manifest["max_tokens"] == 64
    assert "dataset" in capsys.readouterr().out


def test_identical_runs_give_identical_artifacts_and_cache_skips_encoding(tiny, tmp_path, encode_calls):
    first = embed(tiny, tmp_path / "a")
    fresh_calls = len(encode_calls)
    second = embed(tiny, tmp_path / "b")  # a separate root: a separate cache, encodes again
    assert len(encode_calls) == 2 * fresh_calls
    a = json.loads((first / "manifest.json").read_text())["artifacts"]
    b = json.loads((second / "manifest.json").read_text())["artifacts"]
    assert a == b
    # same root, another run name: the embed stage is new, but every text is in the cache
    embed_again = ["run.name=other"]
    args = ["embed"] + sum((["-o", o] for o in tiny_overrides(tiny, tmp_path / "a") + embed_again), []) + EMBED_ARGS
    assert main(args) == 0
    assert len(encode_calls) == 2 * fresh_calls
    third = json.loads((tmp_path / "a" / "other" / "embed" / "manifest.json").read_text())["artifacts"]
    assert third == a


def test_fast_encoding_agrees_with_plain_encode(tiny):
    encoder = encoder_module.TextEncoder.load("bundled", "cpu", "bf16", 64)
    texts = ["Red nail polish by OPI", "A heavy-duty stapler for roofing felt and carpet", "short"]
    fast = encoder.encode(texts, batch_size=2)
    plain = encoder.model.encode(texts, convert_to_numpy=True)
    cos = (fast * plain).sum(1) / np.linalg.norm(fast, axis=1) / np.linalg.norm(plain, axis=1)
    assert cos.min() >= 0.99


def test_unknown_model_is_a_clear_error(tiny, tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")  # never reach for a model hub in tests
    args = ["embed", "-o", f"embed.model={tmp_path / 'no-such-model'}"]
    for o in tiny_overrides(tiny, tmp_path / "runs"):
        args += ["-o", o]
    assert main(args) == 2
    err = capsys.readouterr().err
    assert "embed.model: cannot load sentence model" in err and err.count("\n") == 1
    assert not list((tmp_path / "runs").glob("*/embed"))


def test_users_are_embedded_only_for_a_model_that_self_distils(tiny, tmp_path):
    out = embed(tiny, tmp_path / "runs")  # the default model does not self-distil: no user texts encoded
    assert np.load(out / "user_llm.npy").shape == (8, 0) and np.load(out / "similar_users.npy").shape == (8, 0)
    assert json.loads((out / "manifest.json").read_text())["texts"] == {"items": 8, "users": 0}
    distilling = embed(tiny, tmp_path / "other", "seq.variant=llmesr")
    assert np.load(distilling / "similar_users.npy").shape == (8, 3)
