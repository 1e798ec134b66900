"""Training: the models learn, interrupted runs resume exactly, the CLI trains and evaluates."""

import itertools
import json
from pathlib import Path

import numpy as np
import pytest
import torch

from cli.main import main
from esrgraph.data.sequences import SequenceData
from esrgraph.errors import EsrError
from esrgraph.eval.config import EvalConfig
from esrgraph.eval.evaluate import Evaluator
from esrgraph.seq.config import SeqConfig, TrainConfig
from esrgraph.seq.model import SeqRecommender
from esrgraph.seq.trainer import Trainer, batch_bounds
from esrgraph.training.checkpoint import CheckpointStore
from esrgraph.training.distributed import DistContext
from esrgraph.training.loop import TrainingLoop
from tests.conftest import cluster_sequences, make_dataset, synthetic_trainer, tiny_flags

ITEMS = 40


def setup(backbone, folder, epochs, loss="bce", seed=0, max_length=20, dropout=0.0, build_seed=None, extra=()):
    trainer = synthetic_trainer(
        folder / "ckpt",
        cluster_sequences(300, ITEMS),
        ITEMS,
        f"seq.backbone={backbone}",
        f"train.epochs={epochs}",
        f"train.loss={loss}",
        f"seq.max_length={max_length}",
        f"seq.dropout={dropout}",
        *extra,
        seed=seed,
        build_seed=build_seed,
    )
    return trainer, trainer.evaluator


@pytest.mark.parametrize(
    "backbone, loss", [("sasrec", "bce"), ("gru4rec", "ce"), ("bert4rec", "ce"), ("bsarec", "sampled_softmax")]
)
def test_models_learn_a_sequential_pattern(backbone, loss, tmp_path):
    trainer, evaluator = setup(backbone, tmp_path, epochs=30, loss=loss)
    before = evaluator.evaluate(trainer.model, "test", ["full"])["full"]["overall"]["HR@10"]
    result = trainer.fit(seed=0)
    trainer.model.load_state_dict(torch.load(trainer.store.best_path(), weights_only=True))
    after = evaluator.evaluate(trainer.model, "test", ["full"])["full"]["overall"]["HR@10"]
    # each user stays in one block of 5 items: a model that learned it ranks the block first
    assert before < 0.5 and after > 0.8, (before, after)  # chance: about 10 of 37 unseen items
    assert result.history[-1]["loss"] < result.history[0]["loss"]


def test_the_text_started_id_model_learns(tmp_path):
    """The collaborative view alone, started at stand-in PCA rows: far better than chance."""
    trainer, evaluator = setup("sasrec", tmp_path, epochs=25, loss="ce", extra=("seq.variant=text-init",))
    assert trainer.model.views.names == ["collaborative"]
    trainer.fit(seed=0)
    trainer.model.load_state_dict(torch.load(trainer.store.best_path(), weights_only=True))
    after = evaluator.evaluate(trainer.model, "test", ["full"])["full"]["overall"]["HR@10"]
    assert after > 0.8, after  # chance: about 10 of 37 unseen items


def test_the_dual_view_model_learns_with_per_view_losses(tmp_path):
    """Text views (stand-in rows) beside ids, each view also trained alone: far better than chance."""
    extra = ("seq.variant=dual-view", "seq.view_loss=1.0")
    trainer, evaluator = setup("sasrec", tmp_path, epochs=25, loss="ce", extra=extra)
    trainer.fit(seed=0)
    trainer.model.load_state_dict(torch.load(trainer.store.best_path(), weights_only=True))
    after = evaluator.evaluate(trainer.model, "test", ["full"])["full"]["overall"]["HR@10"]
    assert after > 0.8, after  # chance: about 10 of 37 unseen items


@pytest.mark.parametrize("backbone", ["sasrec", "bert4rec"])
def test_training_does_not_depend_on_max_length_where_every_sequence_fits(backbone, tmp_path):
    # the longest generated sequence has 8 items; the position table's size must not move any draw
    runs, histories = [], []
    for n in (12, 50):  # built and trained one after the other, as the stage does: dropout draws from the global stream
        runs.append(setup(backbone, tmp_path / str(n), epochs=2, max_length=n, dropout=0.2)[0])
        histories.append([{k: v for k, v in e.items() if "seconds" not in k} for e in runs[-1].fit(1).history])
    assert histories[0] == histories[1]
    short, long = (r.model.state_dict() for r in runs)
    for name, value in short.items():
        assert torch.equal(long[name][: len(value)] if "positions" in name else long[name], value), name


def test_a_step_in_parts_trains_as_the_whole_batch(tmp_path):
    """Prefix rows (bsarec) split into parts of at most 2 rows of 20 slots: the loop adds their gradients
    before one step, so two epochs follow the one-pass run (dropout off: the same draws)."""
    runs = []
    for name, positions in (("whole", 65_536), ("parts", 40)):
        trainer, _ = setup("bsarec", tmp_path / name, epochs=2, loss="ce", extra=(f"train.step_positions={positions}",))
        calls = []
        forward = trainer.model.forward
        trainer.model.forward = lambda batch, forward=forward, calls=calls: calls.append(1) or forward(batch)
        runs.append((trainer, trainer.fit(1).history, calls))
    (whole, whole_history, whole_calls), (parts, parts_history, parts_calls) = runs
    whole_calls, parts_calls = len(whole_calls), len(parts_calls)
    assert parts_calls > 10 * whole_calls  # every batch of 128 users went through in many parts
    for a, b in zip(whole_history, parts_history):
        assert a["loss"] == pytest.approx(b["loss"], rel=1e-4)
    for name, value in whole.model.state_dict().items():
        assert torch.allclose(parts.model.state_dict()[name], value, atol=1e-4), name


def untimed(history):
    return [{k: v for k, v in e.items() if "seconds" not in k} for e in history]


def fit_stopped_at(trainer, monkeypatch, owner, name: str, stops) -> None:
    """``trainer.fit(seed=3)`` stopped, as by Ctrl-C, at the first call of ``owner.name`` for which
    ``stops(*arguments)`` holds (the call does not run)."""
    original = getattr(owner, name)

    def interrupting(*arguments):
        if stops(*arguments):
            raise KeyboardInterrupt
        return original(*arguments)

    monkeypatch.setattr(owner, name, interrupting)
    with pytest.raises(KeyboardInterrupt):
        trainer.fit(seed=3)
    monkeypatch.setattr(owner, name, original)


def fit_stopped_before_step(trainer, monkeypatch, step: int) -> None:
    """``trainer.fit(seed=3)`` stopped just before its ``step``-th optimiser step."""
    calls = itertools.count(1)
    fit_stopped_at(trainer, monkeypatch, TrainingLoop, "step", lambda *_: next(calls) == step)


@pytest.mark.parametrize(
    "extra",
    [(), ("train.weight_average=0.9",), ("train.loss=sampled_softmax", "train.sparse_ids=true")],
    ids=["raw", "averaged", "sparse-ids"],
)
def test_resume_after_interruption_equals_an_uninterrupted_run(tmp_path, monkeypatch, extra):
    straight, _ = setup("sasrec", tmp_path / "a", epochs=4, extra=extra)
    expected = straight.fit(seed=3)

    broken, _ = setup("sasrec", tmp_path / "b", epochs=4, extra=extra)
    fit_stopped_before_step(broken, monkeypatch, 2 * len(range(0, len(broken.users), 16)) + 3)  # in epoch 3
    # fresh weights: all (the average's too) must come from the checkpoint
    resumed, _ = setup("sasrec", tmp_path / "b", epochs=4, build_seed=99, extra=extra)
    result = resumed.fit(seed=3, resume=True)
    assert result.epochs == 4
    a, b = straight.model.state_dict(), resumed.model.state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert untimed(expected.history) == untimed(result.history)
    best = [torch.load(t.store.best_path(), weights_only=True) for t in (straight, resumed)]
    assert all(torch.equal(best[0][k], best[1][k]) for k in best[0])


@pytest.mark.parametrize(
    "extra",
    [("train.weight_average=0.9", "seq.dropout=0.2"), ("train.loss=sampled_softmax", "train.sparse_ids=true")],
    ids=["averaged-dropout", "sparse-ids-lazy-average"],
)
def test_a_run_stopped_inside_an_epoch_continues_from_there_exactly(tmp_path, monkeypatch, caplog, extra):
    """train.checkpoint_minutes saves part-way through long epochs; the same command continues from the
    batch it stopped after and ends as the uninterrupted run, which saved at epoch ends only."""
    straight, _ = setup("sasrec", tmp_path / "a", epochs=3, extra=extra)
    expected = straight.fit(seed=3)
    often = (*extra, "train.checkpoint_minutes=1e-9")  # a checkpoint after every batch
    broken, _ = setup("sasrec", tmp_path / "b", epochs=3, extra=often)
    fit_stopped_before_step(broken, monkeypatch, len(range(0, len(broken.users), 16)) + 3)  # epoch 2's third
    resumed, _ = setup("sasrec", tmp_path / "b", epochs=3, build_seed=99, extra=often)
    with caplog.at_level("INFO"):
        result = resumed.fit(seed=3, resume=True)
    assert "resuming epoch 2 after its batch 2" in caplog.text
    a, b = straight.model.state_dict(), resumed.model.state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert untimed(expected.history) == untimed(result.history)


def test_an_interruption_between_the_checkpoint_files_resumes_exactly(tmp_path, monkeypatch):
    from esrgraph.training import checkpoint as checkpoint_module

    straight, _ = setup("sasrec", tmp_path / "a", epochs=4, dropout=0.2)
    straight.fit(seed=3)
    broken, _ = setup("sasrec", tmp_path / "b", epochs=4, dropout=0.2)
    written = []

    def third_index(path, data):  # epoch 3's weights are saved, the index pointing to them is not
        written.append(path.name)
        return written.count("checkpoint.json") == 3

    fit_stopped_at(broken, monkeypatch, checkpoint_module, "write_json", third_index)
    resumed, _ = setup("sasrec", tmp_path / "b", epochs=4, build_seed=99, dropout=0.2)
    result = resumed.fit(seed=3, resume=True)
    assert [e["epoch"] for e in result.history] == [1, 2, 3, 4]
    a, b = straight.model.state_dict(), resumed.model.state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)


def run_cli(tiny, root, *overrides):
    return tiny_flags(tiny, root, "train.epochs=2", *overrides)


def test_train_seq_and_evaluate_through_the_cli(tiny, tmp_path, capsys):
    root = tmp_path / "runs"
    assert main(["train-seq"] + run_cli(tiny, root, "train.seeds=[1,2]")) == 0
    out = capsys.readouterr().out
    assert "| sampled | overall |" in out and "| full | tail_users |" in out and "± " in out
    assert "sampled: target vs 3 sampled negatives; full: target vs every item outside" in out
    metrics = json.loads((root / "r" / "eval" / "metrics.json").read_text())
    assert metrics["seeds"] == [1, 2] and set(metrics["summary"]) == {"sampled", "full"}
    assert metrics["model"] == "sasrec/dual-view (ce)"
    seq_dir = root / "r" / "seq"
    assert sorted(p.name for p in seq_dir.glob("model-seed*.pt")) == ["model-seed1.pt", "model-seed2.pt"]
    assert not (root / "r" / "seq.checkpoints").exists()  # removed once the stage completed
    # evaluate reuses the trained models and the metrics
    assert main(["evaluate"] + run_cli(tiny, root, "train.seeds=[1,2]")) == 0
    assert "| full | overall |" in capsys.readouterr().out
    everyone = metrics["users"]["of"]
    assert metrics["users"]["ranked"] == everyone == metrics["summary"]["full"]["overall"]["users"]
    # data too large to rank every user: a fixed sample, named in the report
    half = f"eval.users={everyone // 2}"
    assert main(["evaluate"] + run_cli(tiny, root, "train.seeds=[1,2]", half)) == 0
    assert f"{everyone // 2:,} of {everyone:,} users, a fixed random sample" in capsys.readouterr().out
    sampled = json.loads((root / "r" / "eval" / "metrics.json").read_text())
    assert sampled["users"] == {"ranked": everyone // 2, "of": everyone}
    assert sampled["summary"]["full"]["overall"]["users"] == sampled["popularity"]["full"]["overall"]["users"]
    assert sampled["summary"]["full"]["overall"]["users"] == everyone // 2


def test_plain_baseline_needs_no_embeddings(tiny, tmp_path):
    root = tmp_path / "runs"
    assert main(["train-seq"] + run_cli(tiny, root, "seq.variant=plain", "seq.backbone=gru4rec")) == 0
    assert not (root / "r" / "embed").exists()


@pytest.mark.parametrize(
    "objective",
    [
        ("train.loss=bce",),
        ("train.loss=sampled_softmax", "train.sparse_ids=true"),
        ("train.loss=bce", "train.step_positions=10"),
    ],
)
def test_two_processes_reach_the_metrics_of_one(tiny, tmp_path, objective):
    """DistributedDataParallel on CPU (gloo): same global batches, negatives and normalisation,
    so without dropout two processes train the same model as one, up to float rounding (with
    sparse id-table updates too: DDP sums the sparse gradients; and with each process's share
    trained one user at a time, its gradients synchronised once a step)."""
    import os
    import subprocess
    import sys

    # BCE: the full softmax's larger item-table gradients turn float rounding into Adam steps above 1e-4
    common = [
        "seq.variant=plain",
        "seq.dropout=0.0",
        *objective,
        "train.batch_size=4",
        "train.epochs=3",
        "train.seeds=[5]",
    ]
    results = {}
    for procs in (1, 2):
        root = tmp_path / f"p{procs}"
        args = ["train-seq"] + run_cli(tiny, root, *common)
        launcher = [
            sys.executable,
            "-m",
            "torch.distributed.run",
            "--standalone",
            f"--nproc_per_node={procs}",
            "-m",
            "cli.main",
        ]
        env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONPATH=str(Path(__file__).resolve().parents[1]))
        done = subprocess.run(launcher + args, env=env, capture_output=True, text=True, timeout=600)
        assert done.returncode == 0, done.stderr[-3000:]
        results[procs] = json.loads((root / "r" / "eval" / "metrics.json").read_text())["summary"]
        manifest = json.loads((root / "r" / "seq" / "manifest.json").read_text())
        assert manifest["world_size"] == procs
    one = torch.load(tmp_path / "p1" / "r" / "seq" / "model-seed5.pt", weights_only=True)
    two = torch.load(tmp_path / "p2" / "r" / "seq" / "model-seed5.pt", weights_only=True)
    # the same training in two halves; Adam turns rounding noise in gradients that are zero in exact
    # arithmetic (attention key biases) into steps of ~1e-5
    assert all(torch.allclose(one[k].float(), two[k].float(), atol=1e-4) for k in one)
    start = SeqRecommender(SeqConfig(variant="plain", hidden_size=8, max_length=10), 8).state_dict()
    assert not torch.allclose(one["views.ids.weight"][:9], start["views.ids.weight"][:9])  # it did train
    history = lambda p: json.loads((tmp_path / f"p{p}" / "r" / "seq" / "history-seed5.json").read_text())
    assert [e["loss"] for e in history(2)] == pytest.approx([e["loss"] for e in history(1)], abs=1e-4)  # global loss
    for protocol, groups in results[1].items():
        for group, metrics in groups.items():
            for name, value in metrics.items():
                other = results[2][protocol][group][name]["mean"] if name != "users" else None
                if name != "users" and value["mean"] is not None:
                    assert abs(value["mean"] - other) <= 1e-3, (protocol, group, name)


def test_length_buckets_keep_every_user_once_and_cut_padding(tmp_path):
    trainer, _ = setup("sasrec", tmp_path, epochs=1)
    trainer.cfg.length_buckets = 4
    order = trainer.user_order(np.random.default_rng(0))
    assert sorted(order.tolist()) == sorted(trainer.users.tolist())
    lengths = trainer.data.train_lengths
    batches = [order[lo : lo + 16] for lo in range(0, len(order), 16)]
    padded = sum(len(b) * lengths[b].max() for b in batches)
    plain = np.random.default_rng(0).permutation(trainer.users)
    padded_plain = sum(len(b) * lengths[b].max() for b in (plain[lo : lo + 16] for lo in range(0, len(plain), 16)))
    assert padded < padded_plain


@pytest.mark.parametrize("backbone, draws", [("sasrec", 1), ("bert4rec", 400)])
def test_the_expected_targets_per_user_are_what_training_batches_hold(backbone, draws, tmp_path):
    trainer, _ = setup(backbone, tmp_path, epochs=1, max_length=3)  # some histories are cut
    model, users = trainer.model, trainer.users
    expected = model.scheme.targets_per_user(trainer.data.train_lengths[users], 3).sum()
    generator = torch.Generator().manual_seed(0)
    counts = [(model.training_batch(users, generator).inputs.targets > 0).sum().item() for _ in range(draws)]
    # next-item targets are counted exactly; masked ones are random, their mean within 1%
    assert np.mean(counts) == pytest.approx(expected, rel=1e-9 if draws == 1 else 0.01)


def test_a_target_weighs_the_same_in_a_batch_of_short_or_of_long_histories(tmp_path):
    trainer, _ = setup("sasrec", tmp_path, epochs=1)
    lengths = trainer.data.train_lengths
    by_length = trainer.users[np.argsort(lengths[trainer.users], kind="stable")]
    short, long = by_length[:8], by_length[-8:]
    assert lengths[long].min() > lengths[short].max()
    generator = torch.Generator().manual_seed(0)
    norms = [trainer.model.training_batch(users, generator).norm for users in (short, long)]
    targets = (trainer.data.training_batch(trainer.users).targets > 0).sum().item()
    # each batch's summed loss is divided by 8 users' share of all targets, not by its own count
    assert norms == pytest.approx([8 * targets / len(trainer.users)] * 2)


def test_a_terminated_run_leaves_no_temporary_folder_and_keeps_its_checkpoints(tiny, tmp_path):
    import os
    import signal
    import subprocess
    import sys
    import time

    root = tmp_path / "runs"
    args = ["train-seq"] + run_cli(tiny, root, "seq.variant=plain", "train.epochs=100000", "train.patience=100000")
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONPATH=str(Path(__file__).resolve().parents[1]))
    proc = subprocess.Popen([sys.executable, "-m", "cli.main", *args], env=env, stderr=subprocess.PIPE, text=True)
    run_dir, deadline = root / "r", time.monotonic() + 120
    while not list(run_dir.glob("seq.checkpoints/**/*.pt")) and time.monotonic() < deadline and proc.poll() is None:
        time.sleep(0.2)
    assert list(run_dir.glob(".seq.*.tmp")), "the stage's temporary folder exists while it trains"
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 143 and "interrupted" in err
    assert not list(run_dir.glob(".*.tmp")) and not (run_dir / "seq").exists()
    assert list(run_dir.glob("seq.checkpoints/**/*.pt"))


def test_what_a_killed_run_left_is_removed_by_the_next_command_of_any_kind(tiny, tmp_path, capsys):
    """SIGKILL runs no cleanup: the stage's temporary folder stays until the next command on the run
    directory, here one that only prints the config (before, only the same stage running again removed it)."""
    import os
    import signal
    import subprocess
    import sys
    import time

    root = tmp_path / "runs"
    flags = run_cli(tiny, root, "seq.variant=plain", "train.epochs=100000", "train.patience=100000")
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONPATH=str(Path(__file__).resolve().parents[1]))
    proc = subprocess.Popen([sys.executable, "-m", "cli.main", "-q", "train-seq", *flags], env=env)
    run_dir, deadline = root / "r", time.monotonic() + 120
    while not list(run_dir.glob("seq.checkpoints/**/*.pt")) and time.monotonic() < deadline and proc.poll() is None:
        time.sleep(0.2)
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=60)
    assert proc.returncode == -signal.SIGKILL and list(run_dir.glob(".seq.*.tmp"))
    assert main(["show-config", *flags]) == 0
    assert not list(run_dir.rglob(".*.tmp"))
    assert list(run_dir.glob("seq.checkpoints/**/*.pt"))  # the checkpoints are no temporaries: kept to resume


def test_tuned_theta_is_recorded_and_saved_with_the_model(tiny, tmp_path):
    root = tmp_path / "runs"
    args = run_cli(
        tiny,
        root,
        "seq.variant=plain",
        "seq.readouts.mode=fitted",
        "seq.readouts.fit_epochs=2",
        "dataset.groups.tail_user_share=0.5",
    )
    assert main(["train-seq"] + args) == 0
    manifest = json.loads((root / "r" / "seq" / "manifest.json").read_text())
    chosen = manifest["seeds"]["42"]["readouts"]["theta"]
    state = torch.load(root / "r" / "seq" / "model-seed42.pt", weights_only=True)
    assert state["readouts.theta"].tolist() == pytest.approx([chosen["head"], chosen["tail"]])
    assert bool(state["readouts.fitted"])
    assert set(manifest["seeds"]["42"]["readouts"]["valid_NDCG@10_by_theta"]) == {"grid", "sampled", "full"}


@pytest.mark.parametrize("min_epochs, stops_after", [(0, 2), (5, 5)])
def test_no_early_stop_before_min_epochs(tmp_path, monkeypatch, min_epochs, stops_after):
    trainer, _ = setup("gru4rec", tmp_path, epochs=20)
    trainer.cfg.patience, trainer.cfg.min_epochs, trainer.floor = 1, min_epochs, None
    scores = iter([0.5, 0.4, 0.3, 0.2, 0.1, 0.05, 0.01] + [0.0] * 20)  # only the first epoch is the best
    monkeypatch.setattr(Trainer, "validate", lambda self: {"NDCG@10": next(scores)})
    result = trainer.fit(seed=0)
    assert (result.epochs, result.best_epoch) == (stops_after, 1)


def test_an_early_popularity_peak_does_not_stop_training(tmp_path, monkeypatch):
    """Validation peaks at the popularity floor, dips for longer than the patience, then climbs: training
    must reach the later, higher peak (patience counts only once the floor is beaten by the margin)."""
    trainer, _ = setup("sasrec", tmp_path, epochs=40, extra=("train.weight_average=0",))  # one curve, raw weights
    trainer.cfg.patience, trainer.cfg.floor_margin, trainer.floor = 3, 0.1, 0.18
    curve = [
        0.170,
        0.183,
        0.180,
        0.178,
        0.176,
        0.177,
        0.179,
        0.186,
        0.19,
        0.21,
        0.23,
        0.25,
        0.26,
        0.255,
        0.25,
        0.248,
        0.247,
        0.246,
    ] + [0.24] * 30
    scores = iter(curve)
    monkeypatch.setattr(Trainer, "validate", lambda self: {"NDCG@10": next(scores)})
    monkeypatch.setattr(TrainingLoop, "train_epoch", lambda self, *args: 1.0)
    result = trainer.fit(seed=0)
    assert result.best_epoch == 13 and result.best_score == 0.26
    assert result.epochs == 16  # three epochs without improvement after the real peak
    # with the floor ignored, the same patience stops on the popularity peak
    trainer.floor = None
    scores = iter(curve)
    assert trainer.fit(seed=0).best_epoch == 2


def test_a_diverging_training_stops_with_a_clear_error(tmp_path):
    trainer, _ = setup("sasrec", tmp_path, epochs=3)
    for group in trainer.optimizer.param_groups:
        group["lr"] = 1e30
    with pytest.raises(EsrError, match="training diverged: the loss became"):
        trainer.fit(seed=0)


def test_no_user_is_dropped_when_the_last_batch_cannot_feed_every_process():
    assert batch_bounds(10, 4) == [(0, 4), (4, 8), (8, 10)]
    assert batch_bounds(10, 4, world=2) == [(0, 4), (4, 8), (8, 10)]
    assert batch_bounds(9, 4, world=2) == [(0, 4), (4, 9)]  # one row left for two processes: it joins
    assert batch_bounds(3, 4, world=2) == [(0, 3)]


def test_more_processes_than_users_to_train_is_refused(tmp_path):
    data = SequenceData(make_dataset(cluster_sequences(3, ITEMS), ITEMS), max_length=20)
    seq = SeqConfig(variant="plain", hidden_size=16, num_heads=1, max_length=20)
    evaluator = Evaluator(data, EvalConfig(sampled_negatives=20), 128, torch.device("cpu"))
    with pytest.raises(EsrError, match="3 users have a training sequence, fewer than the 4 processes"):
        Trainer(
            SeqRecommender(seq, ITEMS),
            data,
            TrainConfig(),
            evaluator,
            torch.device("cpu"),
            CheckpointStore(tmp_path, "test"),
            DistContext(rank=0, world=4),
        )


def test_each_epoch_keeps_the_better_of_the_raw_and_the_averaged_weights(tmp_path, monkeypatch):
    trainer, _ = setup("sasrec", tmp_path, epochs=2, extra=("train.weight_average=0.9",))
    # validation is called for the raw weights, then for the average: the average wins epoch 1, raw epoch 2
    scores = iter([0.10, 0.20, 0.50, 0.30])
    monkeypatch.setattr(Trainer, "validate", lambda self: {"NDCG@10": next(scores)})
    saved = []
    keep = lambda state: saved.append({k: v.clone() for k, v in state.items()})
    monkeypatch.setattr(trainer.store, "save_best", keep)
    averages = []
    original_update = trainer.average.update

    def update_and_copy():
        original_update()
        averages.append([a.clone() for a in trainer.average.average])

    monkeypatch.setattr(trainer.average, "update", update_and_copy)
    result = trainer.fit(seed=0)
    assert [e["weights"] for e in result.history] == ["average", "raw"]
    assert [e["valid_NDCG@10"] for e in result.history] == [0.20, 0.50]
    steps = len(averages) // 2  # both epochs take the same number of steps
    trained = [name for name, p in trainer.model.named_parameters() if p.requires_grad]
    first = dict(zip(trained, averages[steps - 1]))
    assert all(torch.equal(saved[0][name], first[name]) for name in trained)  # epoch 1 kept the average
    final = trainer.model.state_dict()
    assert all(torch.equal(saved[1][name], final[name]) for name in final)  # epoch 2 the raw weights
    assert not torch.equal(saved[1][trained[0]], averages[-1][0])


def test_the_best_weights_are_read_once_the_optimiser_and_the_average_are_let_go(tmp_path):
    trainer, _ = setup("sasrec", tmp_path, epochs=1, extra=("train.weight_average=0.9",))
    result = trainer.fit(seed=0)
    assert trainer.model.views.ids.weight.grad is not None  # the last step's gradients are still there
    best = trainer.finish(result)
    assert trainer.optimizer is None and trainer.average is None and trainer.loop.optimizer is None
    assert all(p.grad is None for p in trainer.model.parameters())
    assert set(best) == set(trainer.model.state_dict())


def test_on_few_steps_an_epoch_the_average_forgets_the_initial_weights_within_its_epochs(tmp_path):
    # 19 steps an epoch here, so after 10 epochs 0.999 keeps 83% of the initial weights; held to a
    # horizon of 2 epochs (38 steps) they fade to under 1%
    def distances(limit):
        trainer, _ = setup("sasrec", tmp_path / str(limit), epochs=10, extra=(f"train.weight_average_epochs={limit}",))
        initial = [p.detach().clone() for p in trainer.average.params]
        trainer.fit(seed=0)
        raw = [p.detach() for p in trainer.average.params]
        gap = lambda weights: sum(float((w - r).norm()) for w, r in zip(weights, raw))
        return trainer.average, gap(trainer.average.average) / gap(initial)

    held, held_gap = distances(2)
    unlimited, unlimited_gap = distances(0)
    steps_per_epoch = held.steps // 10
    assert held.decay == pytest.approx(1 - 1 / (2 * steps_per_epoch)) and unlimited.decay == 0.999
    assert held.steps == unlimited.steps == 10 * steps_per_epoch and held.decay**held.steps < 0.01
    assert unlimited_gap > 0.7  # the average has barely left the initial weights
    assert held_gap < 0.5 * unlimited_gap


def test_an_early_raw_peak_does_not_stop_the_later_rising_average(tmp_path, monkeypatch):
    trainer, _ = setup(
        "sasrec", tmp_path, epochs=8, extra=("train.weight_average=0.9", "train.patience=2", "train.floor_margin=0")
    )
    raw = [0.95, 0.94, 0.94]  # out of patience after epoch 3: validated no more
    average = [0.90, 0.91, 0.92, 0.96, 0.97, 0.96, 0.95]
    scores = iter([value for pair in zip(raw, average) for value in pair] + average[len(raw) :])
    monkeypatch.setattr(Trainer, "validate", lambda self: {"NDCG@10": next(scores)})
    result = trainer.fit(seed=0)
    assert next(scores, None) is None  # every score was asked for: raw 3 times, the average 7
    # raw runs out of patience after epoch 3, the average after epoch 7: training ends there, before the cap
    assert result.epochs == 7 and result.best_epoch == 5 and result.best_score == 0.97
    assert [e["weights"] for e in result.history] == ["raw"] * 3 + ["average"] * 4


def test_validation_ranks_a_fixed_sample_of_users_where_there_are_more(tmp_path):
    from esrgraph.config import load_config
    from esrgraph.eval.evaluate import sample_users
    from esrgraph.seq.build import RecommenderInputs, build_evaluator

    inputs = RecommenderInputs(make_dataset(cluster_sequences(300, ITEMS), ITEMS))
    cfg = load_config(None, ["train.valid_users=120"])
    data = inputs.sequences(cfg)
    evaluator = build_evaluator(cfg, data)
    assert len(evaluator.valid_users) == 120 and np.array_equal(
        evaluator.valid_users, build_evaluator(cfg, data).valid_users
    )
    trainer, _ = setup("sasrec", tmp_path, epochs=1)
    valid = build_evaluator(cfg, trainer.data).evaluate(trainer.model, "valid", ["full"])["full"]["overall"]
    test = build_evaluator(cfg, trainer.data).evaluate(trainer.model, "test", ["full"])["full"]["overall"]
    assert valid["users"] == 120 and test["users"] == 300  # eval.users unset: the test split ranks every user
    picked = sample_users(300, 120, "test")  # eval.users=120: another fixed sample than validation's
    assert np.array_equal(picked, sample_users(300, 120, "test")) and len(np.unique(picked)) == 120
    assert not np.array_equal(picked, evaluator.valid_users) and sample_users(300, 300, "test") is None
    assert build_evaluator(load_config(None), data).valid_users is None  # 300 users: below auto's 50,000


def test_bf16_training_follows_fp32_closely(tmp_path):
    """Autocast changes the matrix products' precision, not what is learned: the same losses to ~1%."""
    losses = {}
    for precision in ("fp32", "bf16"):
        trainer, _ = setup("sasrec", tmp_path / precision, epochs=3, loss="ce", extra=(f"train.precision={precision}",))
        losses[precision] = [e["loss"] for e in trainer.fit(seed=0).history]
    assert losses["bf16"] != losses["fp32"]  # the products did run in bfloat16
    assert losses["bf16"] == pytest.approx(losses["fp32"], rel=0.02)


@pytest.mark.parametrize("loss", ["ce", "sampled_softmax"])
def test_bf16_training_scores_its_candidates_in_fp32(tmp_path, monkeypatch, loss):
    """Only the encoder's products run in bf16: the scores and their softmax are fp32, as bf16 scores kept
    the sampled softmax from recovering after a loss spike at 921k items (benchmarks/README.md)."""
    trainer, _ = setup("sasrec", tmp_path, epochs=1, loss=loss, extra=("train.precision=bf16",))
    objective, seen = trainer.model.parts.objective, []
    real = objective.loss

    def spy(hidden, *args):
        seen.append((hidden.dtype, torch.is_autocast_cpu_enabled()))
        return real(hidden, *args)

    monkeypatch.setattr(objective, "loss", spy)
    encoded = []
    encoder = trainer.model.sequence_outputs
    monkeypatch.setattr(
        trainer.model, "sequence_outputs", lambda *a: encoded.append(torch.is_autocast_cpu_enabled()) or encoder(*a)
    )
    trainer.fit(seed=0)
    assert seen and set(seen) == {(torch.float32, False)}
    assert encoded and all(encoded)  # the encoder itself ran under bf16 autocast


@pytest.mark.parametrize("precision", ["fp32", "bf16"])
def test_validation_encodes_users_in_the_training_precision_and_ranks_alike(tmp_path, monkeypatch, precision):
    """Validation's user vectors follow train.precision (its cost at a middle size is mostly the encoder);
    the metrics the evaluator reports otherwise, test included, encode in fp32."""
    trainer, evaluator = setup("sasrec", tmp_path, epochs=2, loss="ce", extra=(f"train.precision={precision}",))
    trainer.fit(seed=0)
    encoder, autocast = trainer.model.user_vectors, []

    def spy(*args, **kwargs):
        autocast.append(torch.is_autocast_cpu_enabled())
        return encoder(*args, **kwargs)

    monkeypatch.setattr(trainer.model, "user_vectors", spy)
    validated = trainer.validate()["NDCG@10"]
    assert autocast and all(on == (precision == "bf16") for on in autocast)
    autocast.clear()
    reported = evaluator.evaluate(trainer.model, "valid", ["full"])["full"]["overall"]["NDCG@10"]
    assert autocast and not any(autocast)
    assert validated > 0.3 and validated == pytest.approx(reported, abs=0.01)


@pytest.mark.parametrize("native", [True, False])
def test_auto_precision_trains_in_bf16_only_where_the_cpu_computes_it_natively(tmp_path, monkeypatch, native):
    from esrgraph.seq import size_rule
    from esrgraph.training import device as device_module

    monkeypatch.setattr(device_module, "cpu_has_native_bf16", lambda: native)
    monkeypatch.setattr(size_rule, "LARGE_CATALOGUE_ITEMS", 10)  # auto's bf16 is for large catalogues only
    trainer, _ = setup("sasrec", tmp_path, epochs=1, extra=("train.precision=auto",))
    assert trainer.precision == ("bf16" if native else "fp32")
    items, users = f"{trainer.data.num_warm:,}", f"{trainer.data.num_users:,}"
    assert trainer.describe_settings() == (  # what the log says the size rule picked (setup names bce)
        f"{items} trainable items: bce objective, {trainer.precision} matrix products on cpu, "
        f"validation on {users} of {users} users, patience 50, "  # setup names its patience
        "16 users a batch"  # as the synthetic trainer names it
    )
    assert device_module.training_precision("fp32", torch.device("cpu")) == "fp32"  # a named precision is kept


def test_the_pca_rows_are_read_from_the_embed_folder_per_model_built(tmp_path):
    """Inputs read from stage folders keep only the PCA file's folder (the rows initialise the id table,
    then are dropped); each model built from them starts from the file's rows."""
    from esrgraph.config import load_config
    from esrgraph.seq.build import RecommenderInputs, build_recommender
    from esrgraph.text.store import ITEM_LLM, ITEM_PCA

    n, d = 12, 8
    rng = np.random.default_rng(3)
    rows = rng.normal(size=(n + 1, d)).astype(np.float32)
    rows[0] = 0
    np.save(tmp_path / ITEM_PCA, rows)
    np.save(tmp_path / ITEM_LLM, rng.normal(size=(n + 1, 16)).astype(np.float32))
    inputs = RecommenderInputs(make_dataset([[1, 2, 3, 4], [5, 6, 7], [8, 9, 10, 11], [2, 12, 3]], n))
    inputs.llm, inputs.pca = np.load(tmp_path / ITEM_LLM), tmp_path
    cfg = load_config(None, ["seq.hidden_size=8", "seq.num_heads=2", "train.device=cpu"])
    for seed in (1, 2):
        model = build_recommender(cfg, inputs, seed)
        assert torch.allclose(model.views.ids.weight[1 : n + 1], torch.from_numpy(rows[1:]))
    assert inputs.pca == tmp_path  # the rows were not kept
    # text-init: the same start, and no semantic view (its scores are the ids' alone)
    alone = build_recommender(
        load_config(None, ["seq.hidden_size=8", "seq.num_heads=2", "seq.variant=text-init"]), inputs, 1
    )
    assert alone.views.names == ["collaborative"] and alone.views.semantic is None
    assert torch.allclose(alone.views.ids.weight[1 : n + 1], torch.from_numpy(rows[1:]))
    assert alone.user_dim == 8 and not any(name.startswith("views.semantic") for name in alone.state_dict())


def test_no_model_outlives_its_stage(tiny, tmp_path):
    """A trained model sits in reference cycles (its trainer, its training parts); the training stage
    collects each seed's, so the evaluate stage does not load its model beside them. The automatic
    collector is off here: only the stage's own collections free them (without them this fails)."""
    import gc

    gc.collect()
    gc.disable()
    try:
        assert main(["train-seq"] + run_cli(tiny, tmp_path / "runs", "train.seeds=[1,2]")) == 0
        assert not [o for o in gc.get_objects() if type(o) is SeqRecommender]  # type(): no attribute lookups
    finally:
        gc.enable()


def test_no_checkpoint_inside_an_epoch_whose_teachers_come_from_its_start(tmp_path):
    """Self-distillation with per-epoch teachers keeps what the model computed when the epoch began,
    which a checkpoint part-way does not hold: such runs checkpoint at epoch ends only."""
    from types import SimpleNamespace

    from esrgraph.seq.config import DistillConfig
    from esrgraph.seq.distill import SelfDistillation
    from esrgraph.seq.trainer import RecommenderTask

    def task(teacher):
        term = SelfDistillation(np.zeros((3, 2), np.int64), DistillConfig(teacher=teacher), None, 0.1)
        model = torch.nn.Linear(1, 1)
        model.parts = SimpleNamespace(auxiliary=[term])
        return RecommenderTask(SimpleNamespace(model=model), None, None)

    assert task("batch").checkpoints_within_epochs and not task("epoch").checkpoints_within_epochs
    stores = lambda: CheckpointStore(tmp_path, "test")  # a loop without a store saves nothing anyway
    assert TrainingLoop(task("batch"), None, None, 1, stores(), checkpoint_seconds=60.0).checkpoint_seconds == 60.0
    loop = TrainingLoop(task("epoch"), None, None, 1, stores(), checkpoint_seconds=60.0)
    assert loop.checkpoint_seconds == 0.0
