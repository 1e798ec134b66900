"""The weight average: its update rule, the weights it lends to validation, and what training keeps."""

import pytest
import torch
from torch import nn

from esrgraph.training import averaging
from esrgraph.training.averaging import WeightAverage


def test_each_update_keeps_decay_of_the_average_and_adds_the_rest_of_the_new_weights():
    model = nn.Linear(2, 1, bias=False)
    with torch.no_grad():
        model.weight.copy_(torch.tensor([[1.0, 2.0]]))
    average = WeightAverage(model, decay=0.75)
    with torch.no_grad():
        model.weight.copy_(torch.tensor([[5.0, -2.0]]))
    average.update()
    # 0.75 * (1, 2) + 0.25 * (5, -2)
    assert torch.allclose(average.average[0], torch.tensor([[2.0, 1.0]]))


def test_the_model_holds_the_average_only_inside_applied():
    model = nn.Linear(2, 1)
    average = WeightAverage(model, decay=0.5)
    start = [p.detach().clone() for p in model.parameters()]
    with torch.no_grad():
        for p in model.parameters():
            p.add_(1.0)
    average.update()
    trained = [p.detach().clone() for p in model.parameters()]
    with average.applied():
        assert all(torch.allclose(p, s + 0.5) for p, s in zip(model.parameters(), start))
    assert all(torch.equal(p, t) for p, t in zip(model.parameters(), trained))
    # after the block (the two sets swapped storages twice) training and averaging go on as before
    with torch.no_grad():
        for p in model.parameters():
            p.add_(1.0)
    average.update()
    with average.applied():
        assert all(torch.allclose(p, s + 1.25) for p, s in zip(model.parameters(), start))
    assert all(torch.allclose(p, s + 2.0) for p, s in zip(model.parameters(), start))


def test_a_weight_average_restores_from_its_state_and_refuses_a_foreign_one():
    model = nn.Linear(3, 2)
    average = WeightAverage(model, decay=0.9)
    with torch.no_grad():
        model.weight.mul_(3.0)
    average.update()
    other = WeightAverage(model, decay=0.9)
    other.load_state_dict(average.state_dict())
    assert all(torch.equal(a, b) for a, b in zip(other.average, average.average))
    with pytest.raises(ValueError, match="holds 1 tensors"):
        other.load_state_dict({"0": torch.zeros(2, 3)})
    with pytest.raises(ValueError, match="decay"):
        WeightAverage(model, decay=1.0)


def _sparse_twins(seed: int = 0):
    """Two identical models with a sparse-gradient table (row-wise Adam) and a dense layer."""
    models = []
    for _ in range(2):
        torch.manual_seed(seed)
        models.append(nn.ModuleDict({"table": nn.Embedding(40, 3, sparse=True), "dense": nn.Linear(3, 1)}))
    return models


def _train(model, average, lazy: bool, steps: int, seed: int = 1) -> None:
    rows = torch.Generator().manual_seed(seed)
    sparse = torch.optim.SparseAdam(list(model["table"].parameters()), lr=0.1)
    dense = torch.optim.Adam(list(model["dense"].parameters()), lr=0.1)
    for _ in range(steps):
        read = torch.randint(0, 40, (4,), generator=rows)  # a few rows a step; most sit still for many
        loss = (model["dense"](model["table"](read)) - 1.0).pow(2).sum()
        sparse.zero_grad(set_to_none=True)
        dense.zero_grad(set_to_none=True)
        loss.backward()
        if lazy:
            average.before_step()
        sparse.step()
        dense.step()
        average.update()


@pytest.mark.parametrize("chunk", [65_536, 7])
def test_a_sparse_tables_lazy_average_equals_the_eager_one(chunk, monkeypatch):
    """Rows a step does not change move towards their constant weights only when read or changed again;
    the average read then equals the one folded every step, the dense layer's included, whether its
    rows catch up all at once or a few at a time."""
    monkeypatch.setattr(averaging, "CATCH_UP_ROWS", chunk)
    lazy_model, eager_model = _sparse_twins()
    lazy, eager = WeightAverage(lazy_model, decay=0.9), WeightAverage(eager_model, decay=0.9)
    _train(lazy_model, lazy, lazy=True, steps=30)
    _train(eager_model, eager, lazy=False, steps=30)
    table = 0  # the embedding's weight comes first
    behind = (lazy.average[table] - eager.average[table]).abs().amax(1) > 1e-4
    assert behind.any()  # rows left waiting: the lazy average did skip them
    for a, b in zip(lazy.state_dict().values(), eager.state_dict().values()):
        assert torch.allclose(a, b, atol=1e-6)
    with lazy.applied():
        assert torch.allclose(lazy_model["table"].weight, eager.average[table], atol=1e-6)
    before = [a.clone() for a in lazy.average]
    lazy.state_dict()  # reading it again changes nothing: current rows are left bit for bit
    assert all(torch.equal(a, b) for a, b in zip(lazy.average, before))


@pytest.mark.parametrize(
    "steps, max_epochs, expected",
    [
        (39, 30, 0.999),  # the fewest steps an epoch of the datasets 0.999 was measured on: unchanged
        (8, 30, 1 - 1 / 240),  # 943 users in batches of 128: the horizon held to 30 epochs of 8 steps
        (8, 0, 0.999),  # no limit
        (0, 30, 1 - 1 / 30),  # no batch at all counts as one step
    ],
)
def test_the_average_horizon_spans_at_most_the_given_epochs(steps, max_epochs, expected):
    decay = averaging.decay_within(0.999, steps, max_epochs)
    assert decay == pytest.approx(expected)
    if max_epochs and steps:
        assert 1 / (1 - decay) <= max_epochs * steps + 1e-6
