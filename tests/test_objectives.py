"""The objectives' losses against their formulas, written out by hand on toy cases."""

import math

import pytest
import torch
import torch.nn.functional as F

from esrgraph.seq.objectives import Candidates, gbce_beta
from esrgraph.seq.registry import OBJECTIVES

NUM_ITEMS = 6


def toy():
    """Two positions, a table of 6 items (row 0 padding), fixed vectors."""
    gen = torch.Generator().manual_seed(0)
    table = torch.randn(NUM_ITEMS + 1, 4, generator=gen)
    hidden = torch.randn(2, 4, generator=gen)
    targets = torch.tensor([1, 4])
    return table, hidden, targets


def loss(name: str, candidates: Candidates, gbce_t: float = 0.75) -> float:
    table, hidden, targets = toy()
    objective = OBJECTIVES.get(name)(NUM_ITEMS, gbce_t=gbce_t)
    return float(objective.loss(hidden, targets, candidates, lambda ids: table[ids], lambda: table))


def test_sampled_softmax_subtracts_log_q_and_drops_accidental_hits():
    table, hidden, targets = toy()
    shared = torch.tensor([2, 4, 5])  # 4 is position 1's own target: not a negative there
    log_q = torch.log(torch.tensor([1.0, 0.5, 0.2, 0.9, 0.3, 0.7, 0.4]))
    expected = 0.0
    for p in range(2):
        t = int(targets[p])
        logits = [float(hidden[p] @ table[t]) - float(log_q[t])]
        logits += [float(hidden[p] @ table[j]) - float(log_q[j]) for j in shared.tolist() if j != t]
        expected -= logits[0] - math.log(sum(math.exp(x) for x in logits))
    assert loss("sampled_softmax", Candidates(shared=shared, log_q=log_q)) == pytest.approx(expected, rel=1e-5)


def test_full_softmax_is_cross_entropy_over_every_item_but_padding():
    table, hidden, targets = toy()
    logits = hidden @ table[1:].T
    expected = float(F.cross_entropy(logits, targets - 1, reduction="sum"))
    assert loss("ce", Candidates()) == pytest.approx(expected, rel=1e-5)


def test_bce_averages_its_negatives_and_gbce_powers_the_positive_term():
    table, hidden, targets = toy()
    negatives = torch.tensor([[2, 3, 5], [1, 2, 6]])
    pos = (hidden * table[targets]).sum(-1)
    neg = (hidden.unsqueeze(1) * table[negatives]).sum(-1)
    bce = float((F.softplus(-pos) + F.softplus(neg).mean(-1)).sum())
    assert loss("bce", Candidates(per_position=negatives)) == pytest.approx(bce, rel=1e-5)
    beta = gbce_beta(3, NUM_ITEMS, 0.75)
    gbce = float((beta * F.softplus(-pos) + F.softplus(neg).sum(-1)).sum())
    assert loss("gbce", Candidates(per_position=negatives)) == pytest.approx(gbce, rel=1e-5)


def test_gbce_beta_runs_from_plain_bce_to_full_calibration():
    alpha = 3 / (NUM_ITEMS - 1)
    assert gbce_beta(3, NUM_ITEMS, 0.0) == pytest.approx(1.0)  # t = 0: the positive term as in BCE
    assert gbce_beta(3, NUM_ITEMS, 1.0) == pytest.approx(alpha)  # t = 1: scaled by the sampling rate
    assert gbce_beta(3, NUM_ITEMS, 0.5) == pytest.approx((1 + alpha) / 2)  # linear in t: halfway between the two


def _seq(variant: str):
    from esrgraph.config import load_config

    return load_config(None, [f"seq.variant={variant}"]).seq


def test_the_size_rule_picks_the_documented_objective_and_each_its_own_negatives():
    import torch

    from esrgraph.config import load_config
    from esrgraph.seq.objectives import FullSoftmax, GeneralisedBCE, SampledSoftmax, build_objective
    from esrgraph.seq.size_rule import LARGE_CATALOGUE_ITEMS

    train = load_config(None).train
    assert LARGE_CATALOGUE_ITEMS == 15_000 and train.loss == "auto"
    assert "ce up to 15,000 trainable items" in _help("loss")
    assert isinstance(build_objective(train, LARGE_CATALOGUE_ITEMS), FullSoftmax)
    large = build_objective(train, LARGE_CATALOGUE_ITEMS + 1, torch.ones(LARGE_CATALOGUE_ITEMS + 2))
    assert isinstance(large, SampledSoftmax) and large.negatives == 2048
    assert isinstance(build_objective(train, 50_000, text_view=False), FullSoftmax)  # id-only: to 50,000
    assert isinstance(build_objective(train, 50_001, torch.ones(50_002), text_view=False), SampledSoftmax)
    assert "(a model with no text view, seq.variant plain or text-init: ce up to 50,000)" in _help("loss")
    from esrgraph.seq.registry import VARIANTS
    from esrgraph.seq.variants import variant_spec

    no_text_view = [v for v in VARIANTS.names() if not variant_spec(_seq(v)).semantic]
    assert no_text_view == ["plain", "text-init"]  # the two the help names, which the size rule reads
    gbce = build_objective(load_config(None, ["train.loss=gbce"]).train, 100)
    assert isinstance(gbce, GeneralisedBCE) and gbce.negatives == 256
    assert build_objective(load_config(None, ["train.loss=bce", "train.negatives=7"]).train, 100).negatives == 7


@pytest.mark.parametrize("native", [True, False])
def test_the_size_rule_switches_precision_and_validation_users_with_the_objective(monkeypatch, native):
    from esrgraph.config import load_config
    from esrgraph.seq import size_rule
    from esrgraph.training import device as device_module

    monkeypatch.setattr(device_module, "cpu_has_native_bf16", lambda: native)
    train, cpu, small, large = load_config(None).train, torch.device("cpu"), 15_000, 15_001
    assert (train.precision, train.valid_users) == ("auto", "auto")
    assert size_rule.precision_name(train.precision, cpu, small) == "fp32"  # the full softmax gains little
    assert size_rule.precision_name(train.precision, cpu, large) == ("bf16" if native else "fp32")
    assert size_rule.precision_name(train.precision, cpu, large, full_softmax=True) == "fp32"
    assert size_rule.precision_name("fp32", cpu, large) == "fp32" and size_rule.precision_name("bf16", cpu, 9) == "bf16"
    for items, full in ((9, True), (large, False)):  # native: by the chip alone, whatever the size and objective
        assert size_rule.precision_name("native", cpu, items, full_softmax=full) == ("bf16" if native else "fp32")
    assert size_rule.valid_users(train.valid_users, small) == 50_000
    assert size_rule.valid_users(train.valid_users, large) == 10_000
    assert size_rule.valid_users(None, large) is None and size_rule.valid_users(300, small) == 300
    assert (size_rule.patience(train.patience, small), size_rule.patience(train.patience, large)) == (10, 5)
    assert size_rule.patience(7, large) == 7 and "auto: 10, 5 above 15,000" in _help("patience")
    assert "15,000 trainable items with an objective that draws candidates" in _help(
        "precision"
    ) and "10,000 above 15,000" in _help("valid_users")


def test_the_size_rule_batches_128_users_unless_they_would_hold_more_than_2048_targets():
    from esrgraph.config import load_config
    from esrgraph.data.sequences import SequenceData
    from esrgraph.seq import size_rule
    from tests.conftest import make_dataset

    assert load_config(None).train.batch_size == "auto" and "2,048 next-item targets" in _help("batch_size")
    assert size_rule.batch_size("auto", 4.0) == 128  # amazon-scientific: 516 targets in 128 users
    assert size_rule.batch_size("auto", 16.0) == 128 and size_rule.batch_size("auto", 16.1) == 127
    assert size_rule.batch_size("auto", 88.2) == 23  # MovieLens 100K
    assert size_rule.batch_size("auto", 5000.0) == 1 and size_rule.batch_size(37, 88.2) == 37
    # training reads the last max_length items of a training sequence (its last two items are held out)
    data = SequenceData(make_dataset([list(range(1, 13)), [1, 2, 3, 4], [5, 6, 7]], 12), max_length=5)
    assert data.mean_training_targets() == pytest.approx(((5 - 1) + (2 - 1)) / 2)  # the 3-item user has none
    settled = size_rule.resolve(load_config(None).train, 12, True, torch.device("cpu"), 88.2)
    assert settled.batch_size == 23


def _help(name: str) -> str:
    import dataclasses

    from esrgraph.seq.config import TrainConfig

    return next(f.metadata["help"] for f in dataclasses.fields(TrainConfig) if f.name == name)
