"""`esr pipeline` and `esr ablate` end to end on the tiny dataset."""

import json

from cli.main import main
from tests.conftest import tiny_overrides

QUICK = ["train.epochs=2", "seq.hidden_size=8", "seq.max_length=10", "eval.sampled_negatives=3",
         "embed.max_tokens=32", "embed.similar_users=2", "gnn.epochs=3", "gnn.hidden=8", "gnn.heads=2",
         "gnn.projection=8", "run.name=r"]


def args(tiny, root, *extra):
    out = []
    for o in tiny_overrides(tiny, root) + QUICK + list(extra):
        out += ["-o", o]
    return out


def test_pipeline_runs_every_stage_then_skips_them(tiny, tmp_path, capsys, monkeypatch):
    root = tmp_path / "runs"
    assert main(["pipeline"] + args(tiny, root, "seq.fusion=gate", "seq.heads.enabled=true")) == 0
    out = capsys.readouterr().out
    assert "| full | overall |" in out
    for stage in ("dataset", "embed", "graph", "gnn", "seq", "eval"):
        assert (root / "r" / stage / "manifest.json").is_file(), stage
    seq_manifest = json.loads((root / "r" / "seq" / "manifest.json").read_text())
    assert "stage:gnn" in seq_manifest["inputs"]  # the graph embeddings fed the recommender
    # a second run finds every stage up to date and trains nothing
    from esrgraph.seq import trainer

    monkeypatch.setattr(trainer.Trainer, "fit", lambda *a, **k: (_ for _ in ()).throw(AssertionError("retrained")))
    assert main(["pipeline"] + args(tiny, root, "seq.fusion=gate", "seq.heads.enabled=true")) == 0


def test_ablation_writes_table_and_plot(tiny, tmp_path, capsys):
    root = tmp_path / "runs"
    only = ["sasrec", "llmesr", "llmesr+graph-gate", "llmesr+graph-view", "llmesr+graph+heads"]
    assert main(["ablate", "--seeds", "2"] + sum((["--only", v] for v in only), []) + args(tiny, root)) == 0
    folder = root / "r" / "ablation"
    results = json.loads((folder / "ablation.json").read_text())
    assert list(results["variants"]) == only
    combined = results["variants"]["llmesr+graph+heads"]
    valid = {v: sum(results["variants"][v]["valid_NDCG@10"]) for v in ("llmesr+graph-gate", "llmesr+graph-view")}
    best = max(valid, key=valid.get).rsplit("-", 1)[1]
    assert f"seq.fusion={best}" in combined["overrides"]  # chosen on validation, not test
    assert set(results["gains_over_llmesr"]) == set(only) - {"llmesr"}
    assert (folder / "ablation.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "| llmesr+graph-gate | tail_users |" in (folder / "ablation.md").read_text()
    # shared stages ran once; each variant trained in its own stage folder
    assert (root / "r" / "gnn").is_dir() and (root / "r" / "seq-sasrec").is_dir() and (root / "r" / "seq-llmesr").is_dir()
