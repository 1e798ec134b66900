"""The one training loop every model trains through: resume, the checkpoint rule, stopping, best weights."""

import logging
import re

import pytest
import torch

from esrgraph.errors import EsrError
from esrgraph.training.checkpoint import CheckpointStore
from esrgraph.training.loop import TrainingLoop
from esrgraph.training.stopping import EarlyStopping


class Regression:
    """Fits y = 3x - 1 with minibatches drawn from its own generator; monitors its loss."""

    metric = None

    def __init__(self, seed: int = 0):
        torch.manual_seed(seed)
        self.model = torch.nn.Linear(1, 1)
        self.generator = torch.Generator().manual_seed(seed)
        self.x = torch.linspace(-1, 1, 64).unsqueeze(1)
        self.y = 3 * self.x - 1

    def begin_epoch(self, epoch):
        pass

    def batches(self, epoch):
        order = torch.randperm(64, generator=self.generator)
        return [order[lo : lo + 16] for lo in range(0, 64, 16)]

    def loss(self, rows, network):
        return ((network(self.x[rows]) - self.y[rows]) ** 2).mean()

    def validate(self):
        raise AssertionError("a task without a metric is never validated")


def loop(task, folder, epochs=6, identity="a", callbacks=()):
    store = CheckpointStore(folder, identity) if folder is not None else None
    optimizer = torch.optim.SGD(task.model.parameters(), lr=0.1)
    rule = lambda: EarlyStopping(100, "min")
    return TrainingLoop(
        task, optimizer, rule, epochs, store, generators={"batches": task.generator}, callbacks=callbacks
    )


def interrupted(folder, after: int, identity="a"):
    def stop(record):
        if record.epoch == after:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        loop(Regression(), folder, identity=identity, callbacks=(stop,)).fit()


def test_a_resumed_training_ends_as_an_uninterrupted_one(tmp_path):
    straight = Regression()
    expected = loop(straight, tmp_path / "a").fit()
    interrupted(tmp_path / "b", after=3)
    resumed = Regression(seed=99)  # other weights and draws: all must come from the checkpoint
    result = loop(resumed, tmp_path / "b").fit(resume=True)
    assert result.resumed_from == 3 and [e["loss"] for e in result.history] == [e["loss"] for e in expected.history]
    assert torch.equal(resumed.model.weight, straight.model.weight)


def test_damaged_or_foreign_checkpoints_stop_resume_and_restart_auto(tmp_path, caplog):
    interrupted(tmp_path / "c", after=2)
    (path,) = (tmp_path / "c").glob("epoch-*.pt")
    path.write_bytes(b"damaged")
    with pytest.raises(EsrError, match=f"{path}: checkpoint file damaged"):
        loop(Regression(), tmp_path / "c").fit(resume=True)
    with caplog.at_level(logging.WARNING):
        assert loop(Regression(), tmp_path / "c").fit(resume="auto").resumed_from == 0
    assert "checkpoint file damaged" in caplog.text and "starting over" in caplog.text

    interrupted(tmp_path / "d", after=2, identity="other settings")
    with pytest.raises(EsrError, match="made with other settings; run without --resume"):
        loop(Regression(), tmp_path / "d").fit(resume=True)
    assert loop(Regression(), tmp_path / "d").fit(resume="auto").resumed_from == 0


def test_the_best_weights_are_kept_and_a_plateau_stops(tmp_path):
    task = Regression()
    training = loop(task, None, epochs=200)
    training.rule = lambda: EarlyStopping(3, "min", min_delta=1e-3)
    result = training.fit()
    assert result.stopped and result.epochs < 200
    assert round(result.best_score, 6) == result.history[result.best_epoch - 1]["loss"]
    later = [e["loss"] for e in result.history[result.best_epoch :]]
    assert len(later) == 3 and min(later) > result.best_score - 1e-3  # three epochs without a real drop
    assert set(training.best_state(result)) == {"weight", "bias"}
    assert abs(float(task.model.weight) - 3) < 0.1  # it did learn the slope


def test_a_long_epoch_without_a_bar_logs_where_it_stands(caplog, monkeypatch):
    """Output that is not a terminal gets no bar; a line every PROGRESS_SECONDS says batches done and time left."""
    monkeypatch.setattr("esrgraph.progress.PROGRESS_SECONDS", 0.0)
    with caplog.at_level(logging.INFO, logger="esrgraph.progress"):
        loop(Regression(), None, epochs=1).fit()  # pytest's captured output is not a terminal
    lines = [r.getMessage() for r in caplog.records if r.name == "esrgraph.progress"]
    assert [line.split(", loss")[0] for line in lines] == [f"train: epoch 1: batch {k} of 4" for k in (1, 2, 3)]
    assert all(re.search(r"loss \d+\.\d{4}, [\d,.]+ batch/s, about 0 min left$", line) for line in lines), lines
    monkeypatch.setattr("esrgraph.progress.PROGRESS_SECONDS", 1e9)
    caplog.clear()
    with caplog.at_level(logging.INFO, logger="esrgraph.progress"):
        loop(Regression(), None, epochs=1).fit()
    assert not [r for r in caplog.records if r.name == "esrgraph.progress"]


class SparseTask:
    """Rows of a sparse id table and a dense layer fit random targets; batches, negatives and dropout
    all draw random numbers, so only an exact restore of every state continues the same way."""

    metric = None

    def __init__(self, seed: int = 0):
        torch.manual_seed(seed)
        self.model = torch.nn.ModuleDict({"ids": torch.nn.Embedding(50, 4, sparse=True), "out": torch.nn.Linear(4, 1)})
        self.generator = torch.Generator().manual_seed(seed)
        self.targets = torch.linspace(-1, 1, 50)

    def begin_epoch(self, epoch):
        pass

    def batches(self, epoch):
        order = torch.randperm(50, generator=self.generator)
        return [order[lo : lo + 8] for lo in range(0, 48, 8)]  # 6 batches; rows 48 and 49 rest a while

    def loss(self, rows, network):
        noise = torch.randint(0, 50, (len(rows),), generator=self.generator)  # drawn "negatives"
        hidden = torch.nn.functional.dropout(network["ids"](rows), 0.2, training=True)
        fit = ((network["out"](hidden).squeeze(1) - self.targets[rows]) ** 2).mean()
        return fit + 0.01 * network["ids"](noise).pow(2).mean()

    def validate(self):
        raise AssertionError("a task without a metric is never validated")


def sparse_loop(task, folder, seconds):
    from esrgraph.training.averaging import WeightAverage
    from esrgraph.training.optimizers import Optimizers

    optimizer = Optimizers(
        dense=torch.optim.Adam(task.model["out"].parameters(), lr=0.05),
        sparse=torch.optim.SparseAdam(list(task.model["ids"].parameters()), lr=0.05),
    )
    store = CheckpointStore(folder, "sparse") if folder is not None else None
    rule = lambda: EarlyStopping(100, "min")
    average = WeightAverage(task.model, 0.9)
    generators = {"batches": task.generator}
    return TrainingLoop(task, optimizer, rule, 3, store, average, generators, checkpoint_seconds=seconds), average


def test_a_training_stopped_inside_an_epoch_continues_from_there_bit_for_bit(tmp_path, caplog):
    straight_task = SparseTask()  # checkpoints at epoch ends only, as before
    straight, straight_average = sparse_loop(straight_task, tmp_path / "straight", 0.0)
    expected = straight.fit()

    task, steps = SparseTask(), []
    real_loss = task.loss

    def stop_at_step_9(rows, network):  # epoch 2, its third batch
        steps.append(1)
        if len(steps) == 9:
            raise KeyboardInterrupt
        return real_loss(rows, network)

    task.loss = stop_at_step_9
    with pytest.raises(KeyboardInterrupt), caplog.at_level(logging.INFO):
        sparse_loop(task, tmp_path / "b", 1e-9)[0].fit()  # a checkpoint after every batch
    saves = [r.getMessage().rsplit(",", 1)[0] for r in caplog.records if "checkpoint after" in r.getMessage()]
    assert saves == [
        f"train: checkpoint after batch {b} of epoch {e}"
        for e, b in [(1, 1), (1, 2), (1, 3), (1, 4), (1, 5), (2, 1), (2, 2)]
    ]
    caplog.clear()
    assert [p.name for p in (tmp_path / "b").glob("epoch-*.pt")] == ["epoch-00002-batch-0000002.pt"]

    resumed_task = SparseTask(seed=5)  # other weights and draws: everything must come from the checkpoint
    resumed, resumed_average = sparse_loop(resumed_task, tmp_path / "b", 1e-9)
    with caplog.at_level(logging.INFO):
        result = resumed.fit(resume=True)
    assert "resuming epoch 2 after its batch 2" in caplog.text
    assert [e["loss"] for e in result.history] == [e["loss"] for e in expected.history]
    for name, value in straight_task.model.state_dict().items():
        assert torch.equal(resumed_task.model.state_dict()[name], value), name
    for mine, theirs in zip(resumed_average.state_dict().values(), straight_average.state_dict().values()):
        assert torch.equal(mine, theirs)
