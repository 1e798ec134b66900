"""The weight average: its update rule, the weights it lends to validation, and what training keeps."""

import pytest
import torch
from torch import nn

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
