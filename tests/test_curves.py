"""`esr curves`: validation curves by group from a finished run or a training's checkpoint, beside a baseline."""

import json

import pytest

from cli.main import main
from esrgraph.errors import EsrError
from esrgraph.seq.curves import best_entry, curve_table, recommender_stages, stage_folder, stage_histories
from tests.test_seq_train import run_cli

pytestmark = pytest.mark.usefixtures("one_thread")


def entry(epoch, overall, tail_items, weights="raw", **extra):
    return {
        "epoch": epoch,
        "valid_NDCG@10": overall,
        "valid_tail_users": overall,
        "valid_head_users": overall,
        "valid_tail_items": tail_items,
        "valid_head_items": overall,
        "weights": weights,
    } | extra


def test_the_table_marks_the_best_epoch_and_gives_each_groups_change_over_the_baseline():
    history = [entry(1, 0.10, 0.02, valid_raw=0.10, valid_average=0.05), entry(2, 0.12, 0.03, "average")]
    baseline = [entry(1, 0.08, 0.04), entry(2, 0.10, 0.03)]
    rows = curve_table(history, baseline).splitlines()
    first = "| 1 | raw | 0.1000 (+25%) | 0.1000 (+25%) | 0.1000 (+25%) | 0.0200 (-50%) | 0.1000 (+25%) |"
    assert rows[2] == first + " 0.1000 | 0.0500 |"
    assert rows[3].startswith("| **2** | average | 0.1200 (+20%) |") and rows[3].endswith(
        "| 0.0300 (+0%) | 0.1200 (+20%) | – | – |"
    )
    assert best_entry(history)["epoch"] == 2


def test_every_nth_epoch_keeps_the_best_and_the_last():
    history = [entry(e, 0.1 + (0.05 if e == 3 else 0), 0.01) for e in range(1, 8)]
    epochs = [row.split("|")[1].strip() for row in curve_table(history, every=5).splitlines()[2:]]
    assert epochs == ["**3**", "5", "7"]


def test_a_finished_history_wins_over_a_checkpoint_and_a_training_seed_is_read_from_its_checkpoint(tmp_path):
    (tmp_path / "seq").mkdir()
    (tmp_path / "seq" / "history-seed1.json").write_text(json.dumps([entry(1, 0.2, 0.1)]))
    (tmp_path / "seq" / "model-seed1.pt").write_bytes(b"")  # a finished seed has its model beside its history
    for seed, history in ((1, [entry(1, 0.1, 0.0)]), (2, [entry(1, 0.3, 0.1), entry(2, 0.31, 0.1)])):
        folder = tmp_path / "seq.checkpoints" / f"seed-{seed}"
        folder.mkdir(parents=True)
        (folder / "checkpoint.json").write_text(json.dumps({"epoch": len(history), "progress": {"history": history}}))
    found = stage_histories(tmp_path / "seq")
    assert list(found) == [1, 2]
    assert found[1] == ([entry(1, 0.2, 0.1)], True) and found[2][1] is False and len(found[2][0]) == 2


def test_every_recommender_stage_of_a_run_is_found_an_ablations_variants_too(tmp_path):
    for name in ("seq-sasrec", "seq-llmesr.checkpoints", "embed", "eval-sasrec"):
        (tmp_path / name).mkdir()
    assert recommender_stages(tmp_path) == [tmp_path / "seq-llmesr", tmp_path / "seq-sasrec"]
    assert stage_folder(tmp_path / "seq-sasrec") == tmp_path / "seq-sasrec"
    (tmp_path / "seq-run" / "seq.checkpoints").mkdir(parents=True)  # a run directory whose name starts "seq"
    assert stage_folder(tmp_path / "seq-run") == tmp_path / "seq-run" / "seq"
    with pytest.raises(EsrError, match="no seed trained or training here"):
        stage_histories(tmp_path / "seq-sasrec")
    with pytest.raises(EsrError, match="no recommender trained or training here"):
        recommender_stages(tmp_path / "embed")


def test_the_command_prints_a_trained_runs_curves_beside_another_run(tiny, tmp_path, capsys):
    args = run_cli(tiny, tmp_path / "runs", "train.seeds=[1]", "train.weight_average=0.9")
    assert main(["train-seq", *args]) == 0
    other = run_cli(tiny, tmp_path / "runs", "train.seeds=[1]", "seq.variant=plain", "run.name=plain")
    assert main(["train-seq", *other]) == 0
    capsys.readouterr()
    assert main(["curves", *args, "--against", str(tmp_path / "runs" / "plain")]) == 0
    out = capsys.readouterr().out
    history = json.loads((tmp_path / "runs" / "r" / "seq" / "history-seed1.json").read_text())
    baseline = json.loads((tmp_path / "runs" / "plain" / "seq" / "history-seed1.json").read_text())
    best = best_entry(history)
    assert f"best epoch {best['epoch']} ({best['weights']} weights): overall {best['valid_NDCG@10']:.4f}" in out
    assert curve_table(history, baseline) in out
    assert out.count("\n| ") == len(history) + 1  # the header and one row an epoch
    assert main(["curves", *args, "--seed", "5"]) == 2
