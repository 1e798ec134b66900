"""`esr embed` end to end on the tiny dataset with the real bundled model."""

import contextlib
import json
import logging

import numpy as np
import pytest

from cli.main import main
from esrgraph.errors import ConfigError
from esrgraph.text import encoder as encoder_module
from tests.conftest import as_flags, tiny_overrides

EMBED_ARGS = ["-o", "embed.max_tokens=64", "-o", "seq.hidden_size=4", "-o", "embed.similar_users=3"]


def embed(tiny, root, *extra):
    assert main(["embed", *as_flags(tiny_overrides(tiny, root) + list(extra))] + EMBED_ARGS) == 0
    run_dirs = [p for p in root.iterdir() if not p.name.startswith(".")]
    assert len(run_dirs) == 1
    return run_dirs[0] / "embed"


@pytest.fixture
def encode_calls(monkeypatch):
    calls = []
    original = encoder_module.TextEncoder.encode_batches

    def counting(self, batches):
        calls.extend(len(texts) for texts in batches)
        return original(self, batches)

    monkeypatch.setattr(encoder_module.TextEncoder, "encode_batches", counting)
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
    args = ["embed", *as_flags(tiny_overrides(tiny, tmp_path / "a") + embed_again)] + EMBED_ARGS
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
    model = f"embed.model={tmp_path / 'no-such-model'}"
    args = ["embed", *as_flags([model, *tiny_overrides(tiny, tmp_path / "runs")])]
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


def test_openvino_agrees_with_fp32_and_keeps_its_converted_model(tmp_path, monkeypatch, capfd):
    ov = pytest.importorskip("openvino")
    sent = []
    with contextlib.suppress(ImportError):  # the converter's usage reports: none may leave the process
        from openvino_telemetry.utils.sender import TelemetrySender

        monkeypatch.setattr(TelemetrySender, "send", lambda self, backend, message: sent.append(message))
    texts = ["Red nail polish by OPI", "A heavy-duty stapler for roofing felt and carpet", "short"]
    fast = encoder_module.TextEncoder.load("bundled", "cpu", "auto", 64, "openvino", tmp_path / "models")
    assert sent == []
    assert "loss_type" not in capfd.readouterr().err  # the tracer's read of the training-loss property
    exact = encoder_module.TextEncoder.load("bundled", "cpu", "fp32", 64, "torch")
    assert fast.backend == "openvino" and fast.cache_key() != exact.cache_key()
    a, b = fast.encode(texts, batch_size=2), exact.encode(texts, batch_size=2)
    assert ((a * b).sum(1) / np.linalg.norm(a, axis=1) / np.linalg.norm(b, axis=1)).min() >= 0.99
    [kept] = (tmp_path / "models").iterdir()
    assert (kept / "model.xml").is_file() and (kept / "model.bin").is_file()

    def no_conversion(*args, **kwargs):
        raise AssertionError("converted again")

    monkeypatch.setattr(ov, "convert_model", no_conversion)
    again = encoder_module.TextEncoder.load("bundled", "cpu", "auto", 64, "openvino", tmp_path / "models")
    assert np.array_equal(again.encode(texts, batch_size=2), a)  # the kept model, the same numbers


def test_auto_backend_falls_back_to_torch_in_one_log_line(monkeypatch, caplog):
    from esrgraph.text import ov_backend

    monkeypatch.setattr(ov_backend, "available", lambda: False)
    with caplog.at_level(logging.INFO, logger="esrgraph.text.encoder"):
        assert encoder_module.resolve_backend("auto", "cpu") == "torch"
    assert len(caplog.records) == 1 and "fast-embed" in caplog.text
    assert encoder_module.resolve_backend("torch", "cpu") == "torch"
    with pytest.raises(ConfigError, match="^embed.backend: openvino is not installed"):
        encoder_module.resolve_backend("openvino", "cpu")
    monkeypatch.setattr(ov_backend, "available", lambda: True)
    assert encoder_module.resolve_backend("auto", "cpu") == "openvino"
    assert encoder_module.resolve_backend("auto", "cuda:0") == "torch"
    with pytest.raises(ConfigError, match="^embed.backend: openvino runs on the CPU"):
        encoder_module.resolve_backend("openvino", "cuda:0")


def test_a_model_openvino_cannot_convert_stays_on_torch_under_auto(monkeypatch, caplog):
    from esrgraph.errors import EsrError
    from esrgraph.text import ov_backend

    def unconvertible(*args, **kwargs):
        raise RuntimeError("cannot trace this\nmore detail")

    monkeypatch.setattr(ov_backend, "available", lambda: True)
    monkeypatch.setattr(ov_backend, "compile_model", unconvertible)
    with caplog.at_level(logging.WARNING):
        encoder = encoder_module.TextEncoder.load("bundled", "cpu", "auto", 64, "auto")
    assert encoder.backend == "torch" and encoder.encode(["a text"]).shape == (1, 384)
    assert "cannot convert 'bundled' for OpenVINO (RuntimeError: cannot trace this)" in caplog.text
    with pytest.raises(EsrError, match="^embed.backend: cannot convert 'bundled' for OpenVINO"):
        encoder_module.TextEncoder.load("bundled", "cpu", "auto", 64, "openvino")


def test_the_stage_records_its_backend_and_each_backend_has_its_own_cache(tiny, tmp_path):
    pytest.importorskip("openvino")
    root = tmp_path / "runs"
    fast = json.loads((embed(tiny, root) / "manifest.json").read_text())
    assert fast["backend"] == "openvino" and fast["world_size"] == 1
    assert len(list((root / ".cache" / "models").iterdir())) == 1
    args = ["embed", *as_flags(tiny_overrides(tiny, root) + ["embed.backend=torch"])]
    assert main(args + EMBED_ARGS) == 0  # another setting: another run folder, encoded again
    assert len([p for p in (root / ".cache" / "text").iterdir() if p.is_dir()]) == 2
    manifests = [json.loads(p.read_text()) for p in root.glob("*/embed/manifest.json")]
    assert sorted(m["backend"] for m in manifests) == ["openvino", "torch"]


def test_two_processes_encode_shares_and_write_what_one_writes(tiny, tmp_path):
    """torchrun with two processes: each encodes every other text not yet cached, rank 0 writes the stage."""
    import os
    import subprocess
    import sys
    from pathlib import Path

    from esrgraph.text.store import ARTIFACTS

    folders = {}
    for procs in (1, 2):
        root = tmp_path / f"p{procs}"
        args = ["embed", *as_flags(tiny_overrides(tiny, root) + ["embed.precision=fp32"])]
        launcher = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={procs}"]
        env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONPATH=str(Path(__file__).resolve().parents[1]))
        done = subprocess.run(
            launcher + ["-m", "cli.main"] + args + EMBED_ARGS, env=env, capture_output=True, text=True, timeout=600
        )
        assert done.returncode == 0, done.stderr[-3000:]
        [folders[procs]] = root.glob("*/embed")
        assert json.loads((folders[procs] / "manifest.json").read_text())["world_size"] == procs
        writers = {chunk.name.split("-")[2] for chunk in (root / ".cache" / "text").glob("*/chunk-*.npz")}
        assert len(writers) == procs  # every process kept its own share in the cache
    for name in ARTIFACTS:
        one, two = np.load(folders[1] / name), np.load(folders[2] / name)
        assert one.shape == two.shape and np.allclose(one, two, atol=1e-5), name
