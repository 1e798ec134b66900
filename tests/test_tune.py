"""esr tune: trials on validation, a study that continues, the best settings as a config."""

import json

import pytest

from cli.main import main
from esrgraph.config import load_config
from tests.test_seq_train import run_cli

pytestmark = pytest.mark.usefixtures("one_thread")

SPACE = 'tune.space={"train.lr": {"low": 0.0005, "high": 0.01, "log": true}, "seq.dropout": {"choices": [0.0, 0.3]}}'


def tune_args(tiny, root, *extra):
    return run_cli(tiny, root, "seq.variant=plain", "tune.startup_trials=2", SPACE, *extra)


def test_a_study_trains_its_trials_continues_and_writes_the_best_config(tiny, tmp_path, capsys, monkeypatch):
    from esrgraph.seq import trainer

    args = tune_args(tiny, tmp_path / "runs")
    assert main(["tune", "--trials", "3", "--name", "s"] + args) == 0
    folder = tmp_path / "runs" / "r" / "tune" / "s"
    result = json.loads((folder / "trials.json").read_text())
    trials = result["trials"]
    assert len(trials) == 3 and all(t["state"] == "complete" for t in trials)
    assert all(
        0.0005 <= t["settings"]["train.lr"] <= 0.01 and t["settings"]["seq.dropout"] in (0.0, 0.3) for t in trials
    )
    best = max(trials, key=lambda t: t["valid_NDCG@10"])
    assert result["best"]["number"] == best["number"] and "| trial | state |" in capsys.readouterr().out
    cfg = load_config(folder / "best.yaml")  # extends nothing (the bundled defaults) plus the overrides
    assert cfg.train.lr == pytest.approx(best["settings"]["train.lr"]) and cfg.seq.variant == "plain"

    fits = []
    original = trainer.Trainer.fit
    monkeypatch.setattr(trainer.Trainer, "fit", lambda self, *a, **k: fits.append(1) or original(self, *a, **k))
    assert main(["tune", "--trials", "4", "--name", "s"] + args) == 0
    assert len(fits) == 1  # the three finished trials are not trained again
    assert len(json.loads((folder / "trials.json").read_text())["trials"]) == 4


def test_a_space_naming_an_unknown_setting_or_a_bad_range_is_refused(tiny, tmp_path, capsys):
    bad = 'tune.space={"train.learning_rate": {"low": 0.001, "high": 0.01}}'
    assert main(["tune", "--trials", "1"] + run_cli(tiny, tmp_path / "runs", bad)) == 2
    assert "tune.space.train.learning_rate: train.learning_rate: unknown key" in capsys.readouterr().err
    inverted = 'tune.space={"train.lr": {"low": 0.01, "high": 0.001}}'
    assert main(["tune"] + run_cli(tiny, tmp_path / "runs", inverted)) == 2
    assert "tune.space.train.lr: low (0.01) must be below high (0.001)" in capsys.readouterr().err
