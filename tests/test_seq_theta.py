"""Choosing the readout weights θ per user group on validation."""

import numpy as np
import pytest
import torch

from esrgraph.seq.readouts import HEAD, TAIL
from esrgraph.seq.theta import GRID, tune_theta
from tests.conftest import cluster_sequences, synthetic_trainer

ITEMS = 40


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A small model with joint readouts that has learned the cluster pattern, and its evaluator."""
    trainer = synthetic_trainer(
        tmp_path_factory.mktemp("ckpt"),
        cluster_sequences(300, ITEMS),
        ITEMS,
        "seq.readouts.mode=joint",
        "seq.dropout=0.3",
        "train.epochs=12",
        tail_share=0.5,
    )
    assert 0 < trainer.data.tail_users.sum() < len(trainer.data.tail_users)  # both groups have users
    trainer.fit(0)
    return trainer.model, trainer.evaluator


def test_a_readout_that_reverses_the_ranking_is_switched_off_and_each_group_gets_its_best_theta(trained):
    model, evaluator = trained
    with torch.no_grad():
        model.readouts.proj[TAIL].weight.copy_(-10 * torch.eye(model.user_dim))  # scores turned upside down
        model.readouts.proj[TAIL].bias.zero_()
        model.readouts.proj[HEAD].weight.add_(0.5 * torch.randn_like(model.readouts.proj[HEAD].weight))
    model.train()  # as training leaves it: tuning must score without dropout, then restore the mode
    result = tune_theta(model, evaluator)
    assert model.training
    curves = result["valid_NDCG@10_by_theta"]
    assert result["theta"]["tail"] == 0.0
    for protocol in ("sampled", "full"):
        assert curves[protocol]["tail"][0] > curves[protocol]["tail"][1]
    # the curves are the evaluator's own per-group validation figures
    chosen = model.readouts.theta.clone()
    for i in (0, 4, 10):
        model.readouts.theta.fill_(GRID[i])
        for protocol in ("sampled", "full"):
            groups = evaluator.evaluate(model, "valid", [protocol])[protocol]
            assert groups["tail_users"]["NDCG@10"] == pytest.approx(curves[protocol]["tail"][i])
            assert groups["head_users"]["NDCG@10"] == pytest.approx(curves[protocol]["head"][i])
    assert chosen.tolist() == pytest.approx([result["theta"]["head"], result["theta"]["tail"]])
    assert np.isfinite(chosen.numpy()).all()
