"""`esr pipeline` and `esr ablate` end to end on the tiny dataset."""

import json

from cli.main import main
from tests.conftest import tiny_flags

QUICK = [
    "train.epochs=2",
    "gnn.epochs=3",
]


def args(tiny, root, *extra):
    return tiny_flags(tiny, root, *QUICK, *extra)


def only_flags(*variants):
    return [flag for v in variants for flag in ("--only", v)]


def test_pipeline_runs_every_stage_then_skips_them(tiny, tmp_path, capsys, monkeypatch):
    root = tmp_path / "runs"
    assert (
        main(
            ["pipeline"] + args(tiny, root, "seq.fusion=view", "seq.readouts.mode=fitted", "seq.readouts.fit_epochs=2")
        )
        == 0
    )
    out = capsys.readouterr().out
    assert "| full | overall | model |" in out and "| full | overall | popularity |" in out
    for stage in ("dataset", "embed", "graph", "gnn", "seq", "eval"):
        assert (root / "r" / stage / "manifest.json").is_file(), stage
    seq_manifest = json.loads((root / "r" / "seq" / "manifest.json").read_text())
    assert "stage:gnn" in seq_manifest["inputs"]  # the graph embeddings fed the recommender
    # a second run finds every stage up to date and trains nothing
    from esrgraph.seq import trainer

    monkeypatch.setattr(trainer.Trainer, "fit", lambda *a, **k: (_ for _ in ()).throw(AssertionError("retrained")))
    assert (
        main(
            ["pipeline"] + args(tiny, root, "seq.fusion=view", "seq.readouts.mode=fitted", "seq.readouts.fit_epochs=2")
        )
        == 0
    )


def test_pipeline_on_titles_only_skips_the_graph_the_model_does_not_read(tiny, tmp_path, capsys, caplog):
    """Titles-only metadata have no graph: the default model (no graph fusion) trains and is evaluated
    without one; a model that reads the graph stops with the metadata file named."""
    meta = tmp_path / "titles.json"
    meta.write_text(json.dumps({str(i): {"title": f"item {i}"} for i in range(1, 9)}))
    root = tmp_path / "runs"
    assert main(["pipeline"] + args(tiny, root, f"dataset.metadata.path={meta}")) == 0
    assert "| full | overall | model |" in capsys.readouterr().out
    assert "build-graph, pretrain-gnn: skipped" in caplog.text and "titles.json: no usable attribute" in caplog.text
    assert (root / "r" / "eval" / "manifest.json").is_file()
    assert not (root / "r" / "graph").exists() and not (root / "r" / "gnn").exists()
    assert main(["pipeline"] + args(tiny, root, f"dataset.metadata.path={meta}", "seq.fusion=view")) == 2
    assert "titles.json: no usable attribute" in capsys.readouterr().err


def test_ablation_writes_table_and_plot(tiny, tmp_path, capsys):
    root = tmp_path / "runs"
    only = ["sasrec", "llmesr", "dual-view+graph-init", "dual-view+graph-view", "dual-view+readouts-fitted", "full"]
    assert main(["ablate", "--seeds", "2"] + only_flags(*only) + args(tiny, root, "seq.readouts.fit_epochs=2")) == 0
    folder = root / "r" / "ablation"
    results = json.loads((folder / "ablation.json").read_text())
    assert list(results["variants"]) == only
    combined = results["variants"]["full"]
    valid = {v: sum(results["variants"][v]["valid_NDCG@10"]) for v in ("dual-view+graph-init", "dual-view+graph-view")}
    best = max(valid, key=valid.get).rsplit("-", 1)[1]
    assert f"seq.fusion={best}" in combined["overrides"]  # chosen on validation, not test
    assert "seq.readouts.mode=fitted" in combined["overrides"]
    assert results["baseline"] == "sasrec" and set(results["gains"]) == set(only) - {"sasrec"}
    gain = results["gains"]["llmesr"]["full"]["tail_users"]
    assert gain["seed_std"] >= 0 and gain["seed_mean"] is not None  # paired per-seed changes
    assert (folder / "ablation.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    table = (folder / "ablation.md").read_text()
    assert "| dual-view+graph-view | tail_users |" in table and "| popularity (floor) | overall |" in table
    assert results["popularity"]["full"]["overall"]["NDCG@10"] >= 0
    # shared stages ran once; each variant trained in its own stage folder
    assert (
        (root / "r" / "gnn").is_dir() and (root / "r" / "seq-sasrec").is_dir() and (root / "r" / "seq-llmesr").is_dir()
    )


def test_interrupted_ablation_continues_where_it_stopped(tiny, tmp_path, monkeypatch):
    from esrgraph.seq import trainer
    from esrgraph.training.loop import TrainingLoop

    root = tmp_path / "runs"
    argv = ["ablate", "--seeds", "2", "--only", "sasrec"] + args(tiny, root)
    fit, step = trainer.Trainer.fit, TrainingLoop.step
    steps = {1: 0, 2: 0}
    current = {}

    def fit_stopping_at_seed_2(self, seed, resume=False, callbacks=()):
        current["seed"] = seed
        if seed == 2 and not current.get("stopped"):
            current["stopped"] = True
            raise KeyboardInterrupt  # interrupted once, after seed 1 finished
        return fit(self, seed, resume, callbacks)

    def counting_step(self, *a, **k):
        steps[current["seed"]] += 1
        return step(self, *a, **k)

    monkeypatch.setattr(trainer.Trainer, "fit", fit_stopping_at_seed_2)
    monkeypatch.setattr(TrainingLoop, "step", counting_step)
    assert main(argv) == 130  # the command reports the interruption (as Ctrl-C) and stops
    trained_seed_1 = steps[1]
    assert trained_seed_1 > 0 and steps[2] == 0
    assert main(argv) == 0
    assert steps[1] == trained_seed_1  # the finished seed came from its checkpoint, not retrained
    assert steps[2] == trained_seed_1  # the interrupted seed trained in full
    assert json.loads((root / "r" / "ablation" / "ablation.json").read_text())["variants"]["sasrec"]["summary"]


def test_ablation_rejects_an_unknown_variant(tiny, tmp_path, capsys):
    assert main(["ablate", "--only", "dual-view+graph-views"] + args(tiny, tmp_path / "runs")) == 2
    err = capsys.readouterr().err
    assert "unknown variant dual-view+graph-views" in err and "dual-view+graph-view," in err
    assert not (tmp_path / "runs").exists()


def test_ablation_calls_add_up_to_one_table(tiny, tmp_path, monkeypatch):
    from esrgraph.seq import trainer

    root = tmp_path / "runs"
    table = root / "r" / "ablation" / "ablation.json"
    first = only_flags("dual-view+graph-init", "dual-view+readouts-joint")
    assert main(["ablate", "--seeds", "1"] + first + args(tiny, root)) == 0
    fit = trainer.Trainer.fit
    trained = []

    def recording_fit(self, seed, resume=False, callbacks=()):
        trained.append(self.model.readouts is not None)
        return fit(self, seed, resume, callbacks)

    monkeypatch.setattr(trainer.Trainer, "fit", recording_fit)
    # the baseline alone, then the combined variant with its fusion and mode taken from the earlier call's runs
    assert main(["ablate", "--seeds", "1"] + only_flags("llmesr", "full") + args(tiny, root)) == 0
    assert trained == [False, True]  # the earlier variants were not trained again
    results = json.loads(table.read_text())
    assert list(results["variants"]) == ["llmesr", "dual-view+graph-init", "dual-view+readouts-joint", "full"]
    assert {"seq.fusion=init", "seq.readouts.mode=joint"} <= set(results["variants"]["full"]["overrides"])
    assert "gains" not in results  # no id-only model in the table: nothing to measure the gains against
    # results of another training config are stale: they stay out of the table
    assert main(["ablate", "--seeds", "1"] + only_flags("llmesr") + args(tiny, root, "train.epochs=1")) == 0
    results = json.loads(table.read_text())
    assert list(results["variants"]) == ["llmesr"] and "gains" not in results


def test_a_variant_another_call_finishes_while_the_combined_one_trains_joins_the_table(tiny, tmp_path, monkeypatch):
    from esrgraph.seq import trainer

    root = tmp_path / "runs"
    first = only_flags("dual-view+graph-view", "dual-view+readouts-joint")
    assert main(["ablate", "--seeds", "1"] + first + args(tiny, root)) == 0
    fit = trainer.Trainer.fit
    other_call = []

    def fit_while_another_call_runs(self, seed, resume=False, callbacks=()):
        if self.model.views.graph is not None and self.model.readouts is not None and not other_call:
            # the combined variant: meanwhile another call finishes sasrec
            other_call.append(None)
            other_call[0] = main(["ablate", "--seeds", "1"] + only_flags("sasrec") + args(tiny, root))
        return fit(self, seed, resume, callbacks)

    monkeypatch.setattr(trainer.Trainer, "fit", fit_while_another_call_runs)
    assert main(["ablate", "--seeds", "1"] + only_flags("full") + args(tiny, root)) == 0
    assert other_call == [0]
    variants = json.loads((root / "r" / "ablation" / "ablation.json").read_text())["variants"]
    assert list(variants) == ["sasrec", "dual-view+graph-view", "dual-view+readouts-joint", "full"]


def test_combined_variant_needs_graph_and_readout_variants(tiny, tmp_path, capsys):
    assert main(["ablate", "--seeds", "1"] + only_flags("full") + args(tiny, tmp_path / "runs")) == 2
    assert "run the dual-view+graph-* and dual-view+readouts-* variants first" in capsys.readouterr().err
    assert not (tmp_path / "runs").exists()  # refused before anything was trained or written


def test_a_variant_the_settings_rule_out_is_refused_before_any_training(tiny, tmp_path, capsys):
    extra = only_flags("sasrec", "dual-view+readouts-fitted") + args(tiny, tmp_path / "runs", "seq.backbone=bert4rec")
    assert main(["ablate", "--seeds", "1"] + extra) == 2
    assert (
        "variant dual-view+readouts-fitted: seq.readouts.mode: readouts fitted after training read each training"
        in capsys.readouterr().err
    )
    assert not (tmp_path / "runs").exists()


def test_quiet_keeps_progress_lines_out_of_the_log(tiny, tmp_path, caplog, capsys):
    overrides = args(tiny, tmp_path / "runs")
    with caplog.at_level("DEBUG"):
        assert main(["prepare"] + overrides + ["--force"]) == 0
    assert any(r.name.startswith("esrgraph") and r.levelname == "INFO" for r in caplog.records)
    caplog.clear()
    with caplog.at_level("DEBUG"):
        assert main(["-q", "prepare"] + overrides + ["--force"]) == 0
    assert not [r for r in caplog.records if r.name.startswith("esrgraph") and r.levelno < 30]
    assert "users" in capsys.readouterr().out  # the statistics still print
    assert main(["-q", "-v", "prepare"] + overrides) == 2
