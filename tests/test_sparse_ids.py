"""Sparse id-table updates: the size rule, the rows a step moves, and that the model still learns."""

import pytest
import torch

from esrgraph.config import load_config
from esrgraph.errors import ConfigError
from esrgraph.seq.objectives import build_objective
from esrgraph.seq.optimiser import SPARSE_IDS_ABOVE, uses_sparse_ids
from esrgraph.training.optimizers import Optimizers
from tests.conftest import cluster_sequences, synthetic_trainer

ITEMS = 40


def train_cfg(*overrides):
    return load_config(None, list(overrides)).train


@pytest.mark.parametrize(
    "overrides, items, expected",
    [
        (("train.loss=auto",), SPARSE_IDS_ABOVE + 1, True),  # auto picks the sampled softmax there
        (("train.loss=auto",), SPARSE_IDS_ABOVE, False),  # ...and the full softmax here
        (("train.loss=sampled_softmax",), SPARSE_IDS_ABOVE, False),  # small catalogue: exact dense Adam
        (("train.loss=bce",), SPARSE_IDS_ABOVE + 1, True),
        (("train.loss=ce",), SPARSE_IDS_ABOVE + 1, False),  # every row has a gradient anyway
        (("train.loss=sampled_softmax", "train.weight_decay=1e-4"), SPARSE_IDS_ABOVE + 1, False),
        (("train.loss=sampled_softmax", "train.sparse_ids=true"), 10, True),
        (("train.loss=sampled_softmax", "train.sparse_ids=false"), SPARSE_IDS_ABOVE + 1, False),
    ],
)
def test_the_size_rule_picks_the_documented_update(overrides, items, expected):
    train = train_cfg(*overrides)
    objective = build_objective(train, items, torch.ones(items + 1))
    assert uses_sparse_ids(train, objective, items) is expected


def test_sparse_ids_with_the_full_softmax_or_weight_decay_is_refused():
    train = train_cfg("train.loss=ce", "train.sparse_ids=true")
    with pytest.raises(ConfigError, match="train.sparse_ids"):
        uses_sparse_ids(train, build_objective(train, 10), 10)
    with pytest.raises(ConfigError, match="train.weight_decay"):
        load_config(None, ["train.sparse_ids=true", "train.weight_decay=0.01"])


def trainer_for(tmp_path, sparse, *extra):
    return synthetic_trainer(
        tmp_path / str(sparse),
        cluster_sequences(200, ITEMS),
        ITEMS,
        "train.loss=sampled_softmax",
        "train.negatives=8",
        "seq.dropout=0.0",
        "train.weight_average=0",
        f"train.sparse_ids={str(sparse).lower()}",
        *extra,
    )


def one_step(trainer, users, seed=0):
    model = trainer.model
    batch = model.training_batch(users, torch.Generator().manual_seed(seed))
    trainer.optimizer.zero_grad(set_to_none=True)
    model(batch).backward()
    trainer.optimizer.step()
    inputs = batch.inputs
    read = torch.cat([inputs.items.flatten(), inputs.targets.flatten(), batch.candidates.shared])
    return set(read.unique().tolist()) - {0}


def test_a_first_step_equals_dense_adam_and_later_steps_move_only_the_rows_read(tmp_path):
    dense, sparse = trainer_for(tmp_path, False), trainer_for(tmp_path, True)
    assert isinstance(sparse.optimizer, Optimizers) and not isinstance(dense.optimizer, Optimizers)
    assert torch.equal(dense.model.views.ids.weight, sparse.model.views.ids.weight)  # same start
    users = sparse.users[:16]
    before_step = dense.model.views.ids.weight.detach().clone()
    for trainer in (dense, sparse):
        one_step(trainer, users)
    # Adam's first step from zero moments moves only rows with a gradient, by the same amount (each element
    # by about lr = 0.01; sums in another order change elements whose gradient is near Adam's eps by ~1e-5)
    assert not torch.equal(dense.model.views.ids.weight, before_step)
    torch.testing.assert_close(dense.model.views.ids.weight, sparse.model.views.ids.weight, rtol=0, atol=1e-4)
    # a second batch: dense Adam's momentum still moves the first batch's rows, the row-wise one does not
    before = {name: t.model.views.ids.weight.detach().clone() for name, t in (("dense", dense), ("sparse", sparse))}
    read = one_step(sparse, sparse.users[16:32], seed=1)
    one_step(dense, dense.users[16:32], seed=1)
    moved = lambda t, name: set(
        torch.nonzero((t.model.views.ids.weight - before[name]).abs().sum(1) > 0).flatten().tolist()
    )
    assert moved(sparse, "sparse") == read
    assert moved(dense, "dense") > read  # a strict superset: rows of the first step kept moving


def test_a_model_trained_with_sparse_ids_learns_the_pattern(tmp_path):
    trainer = trainer_for(tmp_path, True, "train.epochs=30")
    evaluator = trainer.evaluator
    before = evaluator.evaluate(trainer.model, "test", ["full"])["full"]["overall"]["HR@10"]
    trainer.fit(seed=0)
    trainer.model.load_state_dict(torch.load(trainer.store.best_path(), weights_only=True))
    after = evaluator.evaluate(trainer.model, "test", ["full"])["full"]["overall"]["HR@10"]
    assert before < 0.5 and after > 0.8, (before, after)  # chance: about 10 of 37 unseen items
