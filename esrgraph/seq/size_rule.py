"""What the ``auto`` training settings pick by the size of the catalogue.

One threshold, :data:`LARGE_CATALOGUE_ITEMS` trainable items. Up to it the
full softmax trains, in fp32, validated on every user (up to 50,000): where
both fit, the full softmax was the more accurate under the sampled protocol,
and its logits are a bearable share of an epoch. Above it they dominate the
epoch, so ``auto`` picks the large-catalogue recipe:

* ``train.loss``: the sampled softmax, whose step does not grow with the
  catalogue (from 12,101 items on it tied or beat the full softmax under full
  ranking, on amazon-beauty and on held-out amazon-health and amazon-clothing,
  the latter +4.1% over the full softmax in fp32, 2 seeds). Models with no
  text view (``seq.variant: plain``) keep the full softmax up to 50,000
  items: on amazon-health plain SASRec lost 1.6–6.1% with the sampled
  softmax (seeds 2 and 1);
* ``train.precision``: bf16 where the chip computes it natively, for the
  objectives that draw candidates (the sampled softmax's steps are the
  encoder's matrix products: 1.7–2.2× on idle CPU cores, where the full
  softmax gained 1.2× at most, and the dual-view model's full softmax in
  bf16 diverged after its best epoch on amazon-health, seeds 1–3). Only the
  encoder runs in bf16: with bf16 scores the sampled softmax did not recover
  from a loss spike at 921k items, where fp32 scores did (same batches);
* ``train.valid_users``: a fixed sample of 10,000 users, as validation would
  otherwise take half of such an epoch;
* ``train.patience``: 5 epochs instead of 10. Replayed on the 16 recorded
  histories of the dual-view, LLM-ESR and SASRec models (amazon-health,
  amazon-beauty, amazon-scientific), patience 5 of the raw and the averaged
  weights kept the same best epoch as 10 did; the five epochs more cost
  minutes at this size.

One more setting follows the histories' lengths, not the catalogue:
``train.batch_size`` (``auto``) is 128 users unless they would hold more than
:data:`BATCH_TARGETS` next-item targets on average, then as many users as
hold about that many. On data of long histories a batch of 128 users made an
epoch of a few very large steps, and the id table, which Adam moves by about
the learning rate a step, could not learn the rarer items within the epochs
early stopping gave it.

The measurements: ``benchmarks/README.md`` ("the size rule") and
``results/README.md``.
"""

from __future__ import annotations

from dataclasses import replace

import torch

from ..training.device import training_precision
from .config import TrainConfig
from .registry import OBJECTIVES

# Between amazon-beauty's 12,101 items (the sampled softmax tied, 1% lower under the sampled protocol) and
# amazon-health's 18,427 (held out: level under full ranking at a third of the step's cost).
LARGE_CATALOGUE_ITEMS = 15_000
SMALL_VALID_USERS = 50_000  # every user of the datasets measured: the recorded runs validated on all of them
LARGE_VALID_USERS = 10_000  # a fixed sample: NDCG@10's standard error near 0.002, shared by every epoch
SMALL_PATIENCE, LARGE_PATIENCE = 10, 5
# A batch of 128 users holds 516 (amazon-scientific) to about 1,000 (amazon-office) next-item targets on
# the Amazon data; on MovieLens 100K (88 targets a user) 128 users made 8 steps an epoch of 11,000 targets
# each, too few steps for the id table to learn the tail (results/README.md, "Batches by targets").
BATCH_USERS, BATCH_TARGETS = 128, 2_048
# An id-only model has nothing but the drawn negatives to push a rare item's score down: on amazon-health
# (18,427 items) plain SASRec scored 0.0447 / 0.0444 with the sampled softmax, 0.0476 / 0.0451 with the
# full one (seeds 1 / 2).
ID_ONLY_FULL_SOFTMAX_ITEMS = 50_000


def is_large(num_items: int) -> bool:
    """More trainable items than the full softmax is picked for."""
    return num_items > LARGE_CATALOGUE_ITEMS


def objective_name(loss: str, num_items: int, text_view: bool = True) -> str:
    """The objective ``train.loss`` names; ``auto`` by the number of trainable items and whether the model
    has a text view."""
    if loss != "auto":
        return loss
    limit = LARGE_CATALOGUE_ITEMS if text_view else ID_ONLY_FULL_SOFTMAX_ITEMS
    return "sampled_softmax" if num_items > limit else "ce"


def precision_name(precision: str, device: torch.device, num_items: int, full_softmax: bool = False) -> str:
    """``train.precision``; ``auto``: bf16 where native on ``device`` for a large catalogue trained on drawn
    candidates, else fp32. The full softmax stays fp32: it gained 1.2x at most on one chip, and the
    dual-view model's full softmax in bf16 diverged after its best epoch on amazon-health in every seed.
    ``native``: bf16 wherever it is native, whatever the size (the quick profile's choice)."""
    if precision == "native":
        return training_precision("auto", device)
    if precision != "auto":
        return precision
    return training_precision("auto", device) if is_large(num_items) and not full_softmax else "fp32"


def valid_users(setting: int | str | None, num_items: int) -> int | None:
    """``train.valid_users``: the most users validation ranks (None: every user); ``auto`` by size."""
    if setting != "auto":
        return setting
    return LARGE_VALID_USERS if is_large(num_items) else SMALL_VALID_USERS


def patience(setting: int | str, num_items: int) -> int:
    """``train.patience``; ``auto`` by size."""
    if setting != "auto":
        return setting
    return LARGE_PATIENCE if is_large(num_items) else SMALL_PATIENCE


def batch_size(setting: int | str, mean_targets: float) -> int:
    """``train.batch_size``; ``auto``: :data:`BATCH_USERS` users, fewer where they would hold more than
    :data:`BATCH_TARGETS` targets at ``mean_targets`` targets a user."""
    if setting != "auto":
        return setting
    if mean_targets <= 0:
        return BATCH_USERS
    return max(1, min(BATCH_USERS, int(BATCH_TARGETS // mean_targets)))


def resolve(
    train: TrainConfig, num_items: int, text_view: bool, device: torch.device, mean_targets: float
) -> TrainConfig:
    """``train`` with every size-dependent ``auto`` settled for ``num_items`` trainable items on ``device``
    and ``mean_targets`` training targets a user: the trainer reads concrete values only."""
    loss = objective_name(train.loss, num_items, text_view)
    full_softmax = OBJECTIVES.get(loss, "train.loss").scores_every_item
    return replace(
        train,
        batch_size=batch_size(train.batch_size, mean_targets),
        loss=loss,
        precision=precision_name(train.precision, device, num_items, full_softmax),
        valid_users=valid_users(train.valid_users, num_items),
        patience=patience(train.patience, num_items),
    )
