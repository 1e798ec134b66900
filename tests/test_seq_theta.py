"""Choosing the head weights θ per user group on validation."""

import numpy as np
import pytest
import torch

from esrgraph.config import load_config
from esrgraph.errors import ConfigError
from esrgraph.eval.config import EvalConfig
from esrgraph.eval.evaluate import Evaluator
from esrgraph.seq.batches import SequenceData
from esrgraph.seq.config import HeadsConfig, SeqConfig, TrainConfig
from esrgraph.seq.distributed import DistContext
from esrgraph.seq.heads import HEAD, TAIL
from esrgraph.seq.model import SeqRecommender
from esrgraph.seq.theta import GRID, tune_theta
from esrgraph.seq.trainer import Trainer
from tests.conftest import cluster_sequences, make_dataset

ITEMS = 40


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A small model with heads that has learned the cluster pattern, and its evaluator."""
    data = SequenceData(make_dataset(cluster_sequences(300, ITEMS), ITEMS, tail_share=0.5), max_length=20)
    assert 0 < data.tail_users.sum() < len(data.tail_users)  # both groups have users
    seq = SeqConfig(variant="plain", hidden_size=16, max_length=20, dropout=0.3, heads=HeadsConfig(enabled=True))
    torch.manual_seed(0)
    model = SeqRecommender(seq, ITEMS, tail_users=data.tail_users)
    evaluator = Evaluator(data, EvalConfig(), 128, torch.device("cpu"))
    train = TrainConfig(epochs=12, batch_size=16, lr=1e-2, patience=50)
    Trainer(model, data, seq, train, evaluator, None, torch.device("cpu"), DistContext(),
            tmp_path_factory.mktemp("ckpt")).fit(seed=0, resume=False)
    return model, evaluator


def test_a_head_that_reverses_the_ranking_is_switched_off_and_each_group_gets_its_best_theta(trained):
    model, evaluator = trained
    with torch.no_grad():
        model.heads.proj[TAIL].weight.copy_(-10 * torch.eye(model.user_dim))  # scores turned upside down
        model.heads.proj[TAIL].bias.zero_()
        model.heads.proj[HEAD].weight.add_(0.5 * torch.randn_like(model.heads.proj[HEAD].weight))
    model.train()  # as training leaves it: tuning must score without dropout, then restore the mode
    result = tune_theta(model, evaluator, "full")
    assert model.training
    curves = result["valid_NDCG@10_by_theta"]
    assert result["theta"]["tail"] == 0.0 and curves["tail"][0] > 0.5 > curves["tail"][1]
    for name in ("head", "tail"):
        assert result["theta"][name] == GRID[int(np.argmax(curves[name]))]
    # the curves are the evaluator's own per-group validation figures
    chosen = model.heads.theta_fixed.clone()
    for i in (0, 4, 10):
        model.heads.theta_fixed.fill_(GRID[i])
        groups = evaluator.evaluate(model, "valid", ["full"])["full"]
        assert groups["tail_users"]["NDCG@10"] == pytest.approx(curves["tail"][i])
        assert groups["head_users"]["NDCG@10"] == pytest.approx(curves["head"][i])
    assert chosen.tolist() == pytest.approx([result["theta"]["head"], result["theta"]["tail"]])


def test_tuning_and_learning_theta_are_exclusive():
    with pytest.raises(ConfigError, match="seq.heads.tune_theta and seq.heads.learn_theta"):
        load_config(None, ["seq.heads.tune_theta=true", "seq.heads.learn_theta=true"])
