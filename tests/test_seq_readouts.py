"""User-group readouts fitted after training, and θ chosen under both protocols."""

import json

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from cli.main import main
from esrgraph.config import load_config
from esrgraph.errors import ConfigError
from esrgraph.pipeline import ensure
from esrgraph.runs import Run
from esrgraph.seq import train as train_module
from esrgraph.seq.config import ReadoutsConfig
from esrgraph.seq.fit_readouts import fit_readouts
from esrgraph.seq.readouts import HEAD, TAIL
from esrgraph.seq.store import load_model
from esrgraph.seq.theta import GRID, choose
from esrgraph.seq.trainer import Trainer
from tests.conftest import cluster_sequences, synthetic_trainer, tiny_overrides
from tests.test_seq_train import run_cli

ITEMS = 40


def train(folder, mode="none", epochs=4):
    trainer = synthetic_trainer(
        folder,
        cluster_sequences(200, ITEMS),
        ITEMS,
        f"seq.readouts.mode={mode}",
        "seq.dropout=0.3",
        f"train.epochs={epochs}",
        tail_share=0.5,
    )
    return trainer.model, trainer.data, trainer.fit(0)


@pytest.fixture(scope="module")
def pair(tmp_path_factory):
    """The same model trained without readouts and with readouts to be fitted after training."""
    plain = train(tmp_path_factory.mktemp("plain"))
    after = train(tmp_path_factory.mktemp("after"), "fitted")
    return plain, after


def test_readouts_fitted_after_leave_training_draw_for_draw_as_without_them(pair):
    (plain, _, plain_state), (after, _, after_state) = pair
    untimed = lambda history: [{k: v for k, v in e.items() if "seconds" not in k} for e in history]
    assert untimed(after_state.history) == untimed(plain_state.history)
    shared = {k: v for k, v in after.state_dict().items() if not k.startswith("readouts.")}
    assert shared.keys() == plain.state_dict().keys()
    for name, value in plain.state_dict().items():
        assert torch.equal(shared[name], value), name
    assert not after.readouts.active  # unfitted readouts leave every score the shared one


def test_fitting_changes_only_the_readouts_and_lowers_each_groups_loss(pair):
    _, (model, data, _) = pair
    shared = {k: v.clone() for k, v in model.state_dict().items() if not k.startswith("readouts.")}
    users = data.trainable_users()
    tail = model.readouts.tail_users.numpy()[users]
    model.eval()
    items = model.item_tables().full().detach()

    def loss(group, mask):
        vectors, targets = model.position_vectors(data, users[mask])
        with torch.no_grad():
            logits = model.readouts.proj[group](vectors) @ items.T
        logits[:, 0] = -float("inf")
        return float(F.cross_entropy(logits, targets))

    before = {g: loss(g, m) for g, m in ((HEAD, ~tail), (TAIL, tail))}
    model.train()
    fit_readouts(model, data, ReadoutsConfig(mode="fitted", fit_epochs=30, fit_lr=1e-2), 0)
    assert model.readouts.active and bool(model.readouts.fitted)
    model.eval()
    after = {g: loss(g, m) for g, m in ((HEAD, ~tail), (TAIL, tail))}
    assert after[HEAD] < 0.95 * before[HEAD] and after[TAIL] < 0.95 * before[TAIL]
    for name, value in model.state_dict().items():
        if not name.startswith("readouts."):
            assert torch.equal(value, shared[name]), name
    assert all(p.requires_grad for n, p in model.named_parameters() if not n.startswith("readouts."))
    # θ = 0 gives the shared scores exactly; θ > 0 moves them
    batch = data.history_batch(users[:32], "valid")
    shared_vectors = model.user_vectors(batch.items, batch.lengths)
    model.readouts.theta.fill_(0.0)
    assert torch.equal(model.user_vectors(batch.items, batch.lengths, batch.users), shared_vectors)
    model.readouts.theta.fill_(0.5)
    assert not torch.allclose(model.user_vectors(batch.items, batch.lengths, batch.users), shared_vectors)


def test_both_protocols_take_the_theta_whose_smaller_gain_is_largest():
    full = [0.10, 0.11, 0.12, 0.13, 0.14, 0.15, 0.15, 0.15, 0.15, 0.15, 0.15]
    sampled = [0.30, 0.31, 0.32, 0.31, 0.30, 0.29, 0.28, 0.27, 0.26, 0.25, 0.24]
    assert choose([full]) == GRID[5]  # one protocol: its best θ
    assert choose([full, sampled]) == GRID[2]  # sampled +6.7%, full +20%: the best worst case
    # a readout that lowers one protocol at every θ > 0 is switched off
    assert choose([full, [0.30] + [0.29] * 10]) == 0.0
    assert choose([[None] * 11, [None] * 11]) == 0.0  # a group without users


def test_readouts_fitted_after_training_need_a_left_to_right_backbone():
    with pytest.raises(ConfigError, match="seq.readouts.mode: readouts fitted after training read each training"):
        load_config(None, ["seq.readouts.mode=fitted", "seq.backbone=bert4rec"])


def test_train_seq_fits_the_readouts_after_training_and_saves_them(tiny, tmp_path):
    root = tmp_path / "runs"
    args = run_cli(
        tiny,
        root,
        "seq.variant=plain",
        "seq.readouts.mode=fitted",
        "seq.readouts.fit_epochs=3",
        "dataset.groups.tail_user_share=0.5",
    )
    assert main(["train-seq"] + args) == 0
    stage = root / "r" / "seq"
    readouts = json.loads((stage / "manifest.json").read_text())["seeds"]["42"]["readouts"]
    assert set(readouts["fit_loss"]) == {"head", "tail"} and all(np.isfinite(v) for v in readouts["fit_loss"].values())
    assert set(readouts["valid_NDCG@10_by_theta"]) == {"grid", "sampled", "full"}
    model = load_model(stage, 42)
    assert model.readouts.active
    assert model.readouts.theta.tolist() == pytest.approx([readouts["theta"]["head"], readouts["theta"]["tail"]])


def test_a_resumed_run_keeps_the_readouts_fitted_before_the_interruption(tiny, tmp_path, monkeypatch):
    settings = (
        "seq.variant=plain",
        "seq.readouts.mode=fitted",
        "seq.readouts.fit_epochs=2",
        "train.seeds=[1,2]",
        "dataset.groups.tail_user_share=0.5",
    )
    whole = tmp_path / "whole"
    assert main(["train-seq"] + run_cli(tiny, whole, *settings)) == 0
    fitted, train, fit = [], Trainer.fit, train_module.fit_readouts

    def count(*a, **k):
        fitted.append(a[-1])  # the seed
        return fit(*a, **k)

    stopped = []

    def stop_at_seed_2(self, seed, resume=False, callbacks=()):
        if seed == 2 and not stopped:
            stopped.append(seed)
            raise KeyboardInterrupt
        return train(self, seed, resume, callbacks)

    monkeypatch.setattr(train_module, "fit_readouts", count)
    monkeypatch.setattr(Trainer, "fit", stop_at_seed_2)
    args = run_cli(tiny, tmp_path / "cut", *settings)
    assert main(["train-seq"] + args) == 130
    assert main(["train-seq", "--resume"] + args) == 0
    assert fitted == [1, 2]  # seed 1's readouts were not fitted again
    seeds = lambda root: json.loads((root / "r" / "seq" / "manifest.json").read_text())["seeds"]
    assert seeds(tmp_path / "cut") == seeds(whole)
    for seed in (1, 2):
        cut = torch.load(tmp_path / "cut" / "r" / "seq" / f"model-seed{seed}.pt", weights_only=True)
        for name, value in torch.load(whole / "r" / "seq" / f"model-seed{seed}.pt", weights_only=True).items():
            assert torch.equal(cut[name], value), name


@pytest.mark.parametrize("damaged", ["finished.json", "finished.pt"])
def test_a_damaged_finished_seed_follows_the_checkpoints_rule(tiny, tmp_path, monkeypatch, capsys, caplog, damaged):
    """--resume stops naming the damaged file; "auto" (the default) finishes the seed again, as checkpoints do."""
    settings = ("seq.variant=plain", "seq.readouts.mode=fitted", "seq.readouts.fit_epochs=1", "train.seeds=[1,2]")
    train, fit, fitted = Trainer.fit, train_module.fit_readouts, []

    def stop_at_seed_2(self, seed, resume=False, callbacks=()):
        if seed == 2:
            raise KeyboardInterrupt
        return train(self, seed, resume, callbacks)

    def count(*a, **k):
        fitted.append(a[-1])  # the seed
        return fit(*a, **k)

    monkeypatch.setattr(Trainer, "fit", stop_at_seed_2)
    args = run_cli(tiny, tmp_path, *settings)
    assert main(["train-seq"] + args) == 130
    [path] = (tmp_path / "r").rglob(damaged)
    path.write_bytes(path.read_bytes()[:-20])
    capsys.readouterr()
    assert main(["train-seq", "--resume"] + args) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and str(path) in err[0] and "run without --resume" in err[0], err
    monkeypatch.setattr(Trainer, "fit", train)
    monkeypatch.setattr(train_module, "fit_readouts", count)
    overrides = [o for o in args if o != "-o"]
    ensure(Run(load_config(None, overrides)), "seq", resume="auto")
    assert fitted == [1, 2]  # seed 1 finished again, not taken from the damaged file
    assert any(str(path) in r.getMessage() and "finishing seed 1 again" in r.getMessage() for r in caplog.records)


def test_readouts_fitted_after_training_start_from_a_declared_shared_model(tiny, tmp_path):
    base = tiny_overrides(tiny, tmp_path / "runs") + [
        "run.name=r",
        "train.epochs=2",
        "seq.variant=plain",
        "seq.hidden_size=8",
        "seq.max_length=10",
        "eval.sampled_negatives=3",
    ]
    plain_dir = ensure(Run(load_config(None, base), variant="plain"), "seq")
    after = base + ["seq.readouts.mode=fitted", "seq.readouts.fit_epochs=2", f"seq.readouts.shared_model={plain_dir}"]
    after_dir = ensure(Run(load_config(None, after), variant="after"), "seq")
    summary = json.loads((after_dir / "manifest.json").read_text())["seeds"]["42"]
    assert summary["shared_model_from"] == plain_dir.name
    plain_state = torch.load(plain_dir / "model-seed42.pt", weights_only=True)
    after_state = torch.load(after_dir / "model-seed42.pt", weights_only=True)
    assert all(torch.equal(after_state[k], v) for k, v in plain_state.items())
    assert bool(after_state["readouts.fitted"]) and not torch.equal(after_state["readouts.proj.1.weight"], torch.eye(8))
    # the same model trained here instead of taken: identical
    trained_dir = ensure(Run(load_config(None, after[:-1]), variant="trained"), "seq")
    assert "shared_model_from" not in json.loads((trained_dir / "manifest.json").read_text())["seeds"]["42"]
    trained_state = torch.load(trained_dir / "model-seed42.pt", weights_only=True)
    assert all(torch.equal(trained_state[k], v) for k, v in after_state.items())
    # a declared shared model trained with other settings is refused, naming the setting
    with pytest.raises(ConfigError, match="seq.readouts.shared_model: .* not a finished seq stage trained with these"):
        ensure(Run(load_config(None, after + ["train.lr=0.002"]), variant="other"), "seq")
