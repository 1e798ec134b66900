"""Every registered backbone: output shapes, and no later item ever reaches a prediction."""

import numpy as np
import pytest
import torch

from esrgraph.config import load_config
from esrgraph.data.sequences import SequenceData
from esrgraph.seq.backbones import left_padded
from esrgraph.seq.build import RecommenderInputs, build_recommender, prepare_training
from esrgraph.seq.config import SeqConfig
from esrgraph.seq.registry import BACKBONES
from tests.conftest import make_dataset

N = 30
SEQUENCES = [[1, 2, 3, 4, 5, 6, 7], [8, 9, 10, 11], [12, 13, 14, 15, 16, 17, 18, 19, 20], [3, 5, 7, 9, 11]]


def built(backbone: str, sequences=SEQUENCES, seed: int = 0):
    cfg = load_config(
        None,
        [
            f"seq.backbone={backbone}",
            "seq.variant=plain",
            "seq.hidden_size=8",
            "seq.num_heads=2",
            "seq.max_length=6",
            "seq.dropout=0.0",
        ],
    )
    inputs = RecommenderInputs(make_dataset(sequences, N))
    data = SequenceData(inputs.dataset, cfg.seq.max_length, left_padded(cfg.seq))
    model = build_recommender(cfg, inputs, seed)
    prepare_training(cfg, inputs, model, data)
    return model.eval(), data


@pytest.mark.parametrize("backbone", BACKBONES.names())
def test_outputs_have_one_vector_per_position_and_user(backbone):
    model, data = built(backbone)
    users = np.arange(len(SEQUENCES))
    batch = data.history_batch(users, "test", model.appended_tokens)
    outputs = model.sequence_outputs(batch.items, batch.lengths)
    assert outputs.shape == (*batch.items.shape, 8) and torch.isfinite(outputs).all()
    assert model.user_vectors(batch.items, batch.lengths).shape == (len(users), 8)
    training = model.training_batch(users, torch.Generator().manual_seed(0))
    assert torch.isfinite(model(training)) and (training.inputs.targets > 0).sum() > 0


def early_predictions(model, data) -> torch.Tensor:
    """The vectors that predict user 2's training targets 13..16 (its positions 1..4)."""
    batch = model.scheme.reading_batch(data, np.array([2]))
    outputs = model.sequence_outputs(batch.items, batch.lengths)
    where = batch.targets > 0
    return outputs[where][batch.targets[where] <= 16]


READING = [b for b in BACKBONES.names() if BACKBONES.get(b).scheme(SeqConfig(), 0).reads_positions]


@pytest.mark.parametrize("backbone", READING)
def test_no_later_item_reaches_a_training_prediction(backbone):
    """Two datasets differ from position 5 of user 2 on: every prediction of a target before it is the
    same in both (masked-item models read both sides on purpose and are left out)."""
    changed = [list(s) for s in SEQUENCES]
    changed[2][5:] = [29, 28, 27, 26]
    model, data = built(backbone)
    twin, twin_data = built(backbone, changed)
    early, twin_early = early_predictions(model, data), early_predictions(twin, twin_data)
    assert len(early) == 4 and torch.allclose(early, twin_early, atol=1e-6)


def test_prefix_rows_hold_exactly_the_items_before_their_target():
    model, data = built("bsarec")
    batch = model.scheme.reading_batch(data, np.array([0, 2]))
    for row in range(len(batch.items)):
        items = batch.items[row][batch.items[row] > 0].tolist()
        target = int(batch.targets[row].max())
        user = int(batch.users[row])
        sequence = SEQUENCES[user][:-2]
        cut = sequence.index(target)
        assert items == sequence[:cut][-6:] and batch.items[row, -1] == items[-1]  # left-padded window


@pytest.mark.parametrize("backbone", ["bsarec", "sasrec"])
def test_a_batch_trained_in_parts_has_the_whole_batchs_gradient(backbone):
    """Parts of whole users, each under the position bound, whose losses add up to the batch's: the
    summed gradient is the one-pass gradient (dropout is off, so both passes compute the same)."""
    model, _ = built(backbone)
    model.train()
    users = np.arange(len(SEQUENCES))
    batch = model.training_batch(users, torch.Generator().manual_seed(0))
    width = batch.inputs.items.shape[1]
    parts = batch.parts(2 * width)  # at most two rows a part (a user's rows stay together)
    assert len(parts) > 1 and sum(len(p.users) for p in parts) == len(users)
    assert all(len(p.inputs.items) <= 2 or len(p.users) == 1 for p in parts)
    assert sum(len(p.inputs.items) for p in parts) == len(batch.inputs.items)
    assert batch.parts(len(batch.inputs.items) * width) == [batch]

    def gradient(pieces):
        model.zero_grad(set_to_none=True)
        loss = sum(model(piece) for piece in pieces)
        loss.backward()
        grads = [p.grad.clone() for p in model.parameters() if p.grad is not None]
        return float(loss), grads

    whole, whole_grads = gradient([batch])
    summed, part_grads = gradient(parts)
    assert summed == pytest.approx(whole, rel=1e-5)
    assert len(part_grads) == len(whole_grads)
    assert all(torch.allclose(a, b, atol=1e-6) for a, b in zip(part_grads, whole_grads))


def test_positions_read_in_bounded_passes_are_the_same_vectors():
    """Fitting readouts reads every prefix row of a user; passes of one row each give the same vectors."""
    model, data = built("bsarec")
    users = np.arange(len(SEQUENCES))
    whole, whole_targets = model.position_vectors(data, users)
    width = model.scheme.reading_batch(data, users).items.shape[1]
    rowwise, rowwise_targets = model.position_vectors(data, users, positions=width)
    assert len(whole) == sum(len(s) - 3 for s in SEQUENCES)  # training sequences drop 2 items; the first has none
    assert torch.equal(whole_targets, rowwise_targets) and torch.allclose(whole, rowwise, atol=1e-6)
