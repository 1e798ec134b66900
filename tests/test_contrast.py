"""Contrastive sequence augmentation: its operators, its loss, and a model that learns with it."""

import numpy as np
import pytest
import torch

from esrgraph.seq.config import ContrastConfig
from esrgraph.seq.contrast import augment, info_nce
from tests.test_seq_train import setup

SEQ = np.arange(1, 11)
CFG = ContrastConfig(weight=0.1, crop=0.6, mask=0.3, reorder=0.3)


def draws(operator: int, n: int = 20) -> list[np.ndarray]:
    generator = torch.Generator().manual_seed(0)
    return [augment(SEQ, operator, CFG, generator) for _ in range(n)]


def test_crop_keeps_one_contiguous_span_of_the_stated_share():
    crops = draws(0)
    assert all(len(c) == 6 and np.array_equal(c, np.arange(c[0], c[0] + 6)) for c in crops)
    assert len({int(c[0]) for c in crops}) > 1  # the span moves


def test_mask_hides_the_stated_share_behind_the_padding_item_and_keeps_the_rest():
    for masked in draws(1):
        hidden = masked == 0
        assert hidden.sum() == 3 and np.array_equal(masked[~hidden], SEQ[~hidden])
    assert len({tuple(m) for m in draws(1)}) > 1  # the hidden items change


def test_reorder_shuffles_one_span_only():
    for shuffled in draws(2):
        moved = np.flatnonzero(shuffled != SEQ)
        assert sorted(shuffled) == list(SEQ)
        assert len(moved) == 0 or moved.max() - moved.min() < 3
    assert any(not np.array_equal(s, SEQ) for s in draws(2))


def test_a_single_item_is_left_alone():
    one = np.array([7])
    assert all(np.array_equal(augment(one, op, CFG, torch.Generator()), one) for op in range(3))


def test_info_nce_is_low_for_matching_pairs_and_equals_its_definition():
    a = torch.eye(4)
    assert info_nce(a, a.clone(), 0.1) < 0.01
    b = torch.randn(4, 3, generator=torch.Generator().manual_seed(1))
    c = torch.randn(4, 3, generator=torch.Generator().manual_seed(2))
    z = torch.nn.functional.normalize(torch.cat([b, c]), dim=-1)
    sims = z @ z.T / 0.5
    manual = 0.0
    for i in range(8):
        partner = (i + 4) % 8
        others = torch.cat([sims[i, :i], sims[i, i + 1 :]])
        manual += -(sims[i, partner] - torch.logsumexp(others, 0))
    assert info_nce(b, c, 0.5).item() == pytest.approx(manual.item() / 2, rel=1e-5)


def test_a_model_trained_with_the_contrastive_term_learns_far_better_than_chance(tmp_path):
    extra = ("seq.variant=dual-view", "seq.contrast.weight=0.5")
    trainer, evaluator = setup("sasrec", tmp_path, epochs=25, loss="ce", extra=extra)
    result = trainer.fit(seed=0)
    trainer.model.load_state_dict(torch.load(trainer.store.best_path(), weights_only=True))
    after = evaluator.evaluate(trainer.model, "test", ["full"])["full"]["overall"]["HR@10"]
    assert after > 0.8, after  # chance: about 10 of 37 unseen items
    assert result.history[-1]["loss"] < result.history[0]["loss"]
