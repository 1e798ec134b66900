"""The two leave-one-out protocols: sampled negatives and full ranking.

* ``sampled``: the target against ``n`` negatives drawn uniformly, without
  replacement, from items the user never interacted with; each user's draw is
  fixed by (seed, split, user), so every model meets the same negatives. A user
  who left fewer than ``n`` items unseen meets all of them (the row is padded
  with item 0, which never counts).
* ``full``: the target against every item outside the user's history (all
  items before the target, not only those inside ``max_length``). Items are
  scored in blocks of :data:`COLUMNS_PER_PASS`, so a batch never holds a
  [users, catalogue] score matrix: at 705,883 items one [256, N] matrix was
  723 MB, and ranking that way took twice as long on one idle core
  (``benchmarks/README.md``).

Cold items (no interaction in any history) are never leave-one-out targets and
are left out of both protocols' candidates; the cold-item protocol
(:mod:`.cold`) ranks them.

A diverged model earns nothing: a candidate scored NaN counts against the
target, and a target scored NaN or infinite ranks behind every candidate.
"""

from __future__ import annotations

import itertools
from typing import Protocol

import numpy as np
import torch

from ..data.sequences import SequenceData
from ..errors import EsrError
from ..progress import Progress
from .blocks import COLUMNS_PER_PASS, history_pairs, mask_block

SPLIT_CODES = {"valid": 1, "test": 2}


class Tables(Protocol):
    """Every item's vectors, [N + 1, width]: a tensor, or views concatenated a block of rows at a time."""

    shape: torch.Size

    def __len__(self) -> int: ...
    def __getitem__(self, rows: slice) -> torch.Tensor: ...


class Scorer(Protocol):
    appended_tokens: int  # positions user_vectors adds after a history (histories are cut to leave room)

    def user_vectors(
        self, items: torch.Tensor, lengths: torch.Tensor, users: torch.Tensor | None = None
    ) -> torch.Tensor: ...
    def item_tables(self) -> Tables: ...
    def score_all(
        self, users: torch.Tensor, tables: Tables | None = None, columns: slice | None = None
    ) -> torch.Tensor: ...  # [B, N + 1], or [B, len(columns)]: the items of a slice of the catalogue
    def score_items(self, users: torch.Tensor, items: torch.Tensor) -> torch.Tensor: ...


def sampled_negatives(data: SequenceData, split: str, n: int, seed: int, users: np.ndarray | None = None) -> np.ndarray:
    """[len(users), n] negatives (row i for ``users[i]``; every user by default), never items the user
    interacted with (any split); 0 pads the rows of users with fewer than ``n`` unseen items. A user's
    draws depend on (seed, split, user) alone, so a sample of users meets the rows every user would:
    at a million users the whole table was 0.75 GB, every row drawn in Python, to test a sample."""
    users = np.arange(data.num_users) if users is None else users
    out = np.zeros((len(users), n), dtype=np.int64)
    for row, user in enumerate(users.tolist()):
        seq = data.full[user]
        rng = np.random.default_rng([seed, SPLIT_CODES[split], user])
        seen = set(seq.tolist())
        free = data.num_warm - len(seen)
        if free <= 0:
            raise EsrError(f"user {user} interacted with every item; the sampled protocol has no negatives to draw")
        if free <= 4 * n:  # small complement: sample from it directly
            pool = np.setdiff1d(np.arange(1, data.num_warm + 1), np.fromiter(seen, np.int64))
            drawn = rng.choice(pool, size=min(n, free), replace=False)
            out[row, : len(drawn)] = drawn
            continue
        picked: list[int] = []
        chosen: set[int] = set()
        while len(picked) < n:
            for item in rng.integers(1, data.num_warm + 1, size=2 * n).tolist():
                if item not in seen and item not in chosen:
                    chosen.add(item)
                    picked.append(item)
                    if len(picked) == n:
                        break
        out[row] = picked
    return out


@torch.no_grad()
def rank_targets(
    model: Scorer,
    data: SequenceData,
    split: str,
    protocol: str,
    batch_size: int,
    device: torch.device,
    negatives: np.ndarray | None = None,
    users: np.ndarray | None = None,
    encode_bf16: bool = False,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Rank of each user's ``split`` target; returns (users, targets, ranks). ``negatives`` (the sampled
    protocol): row i for ``users[i]`` (every user by default), as :func:`sampled_negatives` draws them.

    ``encode_bf16``: the user vectors' matrix products in bfloat16 (autocast; validation of a model
    trained so), the scores still in fp32, so that items do not tie at bfloat16's 3 digits."""
    users = np.arange(data.num_users) if users is None else users
    fixed = getattr(model, "fixed_scores", None)
    if protocol == "full" and fixed is not None:
        return users, *_fixed_full_ranks(fixed(), data, split, users)
    tables = model.item_tables() if protocol == "full" else None
    order = _batch_order(data, split, users, protocol)
    ranks, targets = [], []
    with Progress(len(users), f"{split} {protocol} ranking", "user", leave=False) as progress:
        for lo in range(0, len(users), batch_size):
            rows = order[lo : lo + batch_size]
            chunk = users[rows]
            batch = data.history_batch(chunk, split, model.appended_tokens).to(device)
            with torch.autocast(device.type, dtype=torch.bfloat16, enabled=encode_bf16):
                vectors = model.user_vectors(batch.items, batch.lengths, batch.users)
            vectors = vectors.float()
            if protocol == "full":
                rank = _full_rank(model, vectors, tables, batch.targets, data.history_sets(chunk, split), data.num_warm)
            else:
                candidates = torch.cat(
                    [batch.targets.unsqueeze(1), torch.from_numpy(negatives[rows]).to(device)], dim=1
                )
                scores = model.score_items(vectors, candidates)
                rank = count_ahead(scores[:, 1:], scores[:, 0], candidates[:, 1:] > 0)  # item 0: padding
            ranks.append(rank.cpu().numpy())
            targets.append(batch.targets.cpu().numpy())
            progress.update(len(chunk))
    back = np.argsort(order, kind="stable")
    return users, np.concatenate(targets)[back], np.concatenate(ranks)[back]


def _batch_order(data: SequenceData, split: str, users: np.ndarray, protocol: str) -> np.ndarray:
    """The order users are ranked in: by history length, so that batches pad little; under full
    ranking first by the block of items their target falls in, so that a batch meets few such blocks
    (each is scored before the others, to know the targets' scores)."""
    lengths = np.array([len(data.full[u]) for u in users])
    if protocol != "full":
        return np.argsort(lengths, kind="stable")
    blocks = data.split_targets(users, split) // COLUMNS_PER_PASS
    return np.lexsort((lengths, blocks))


def _fixed_full_ranks(
    scores: torch.Tensor, data: SequenceData, split: str, users: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """(targets, ranks) under full ranking for one score per item, the same for every user.

    The same candidates and rule as :func:`_full_rank` without scoring [users, N] at all: the
    candidates at least as high as the target are those of the whole catalogue, less the user's
    history items among them. A popularity floor ranked 50,000 users against 705,883 items in about
    8 minutes the scoring way.
    """
    warm = scores.flatten()[: data.num_warm + 1].double().cpu().numpy()
    if not np.isfinite(warm[1:]).all():
        raise EsrError("fixed item scores must be finite")
    ordered = np.sort(warm[1:])
    targets = data.split_targets(users, split)
    target_scores = warm[targets]
    # warm items scored at least as high as the target, the target itself left out
    ranks = len(ordered) - np.searchsorted(ordered, target_scores, side="left") - 1
    for row, history in enumerate(data.history_sets(users, split)):  # history items are all warm
        seen = np.unique(history[history != targets[row]])
        ranks[row] -= int((warm[seen] >= target_scores[row]).sum())
    return targets, ranks


def _full_rank(
    model: Scorer,
    vectors: torch.Tensor,
    tables: Tables | None,
    targets: torch.Tensor,
    histories: list[np.ndarray],
    num_warm: int,
) -> torch.Tensor:
    """The target against every item but itself, the padding item 0, the user's history and cold items
    (warm items are 1..``num_warm``). A scorer without item tables is scored in one block."""
    width = COLUMNS_PER_PASS if tables is not None else num_warm + 1
    return ranks_in_blocks(model, vectors, tables, targets, histories, num_warm, width)[0]


def ranks_in_blocks(
    model: Scorer,
    vectors: torch.Tensor,
    tables: Tables | None,
    targets: torch.Tensor,
    histories: list[np.ndarray],
    last: int,
    width: int = COLUMNS_PER_PASS,
    starts: tuple[int, ...] = (0,),
) -> list[torch.Tensor]:
    """Per start column s, each row's candidates among items s..``last`` scored at least as high as its
    target; a row's candidates are every item but the padding item 0, its history and its target.

    Items are scored ``width`` at a time, the blocks holding the batch's targets first, so that each
    row's target score comes from the same matrix product as the items of its block. In each block
    the row's non-candidates are overwritten with −inf, so one comparison ranks a finite target: no
    candidate mask as wide as the scores is built. A row whose target is not finite (a diverged model)
    has every candidate ahead of it.
    """
    device = vectors.device
    rows = torch.arange(len(targets), device=device)
    excluded = excluded_pairs(len(targets), histories, targets, device)
    blocks, with_targets = target_blocks_first(targets, width, last)
    held = []  # the blocks holding targets, kept until every target's score is read from them
    target = None
    for lo, hi in blocks[:with_targets]:
        scores = model.score_all(vectors, tables, columns=slice(lo, hi))
        target = scores.new_empty(len(targets)) if target is None else target
        inside = (targets >= lo) & (targets < hi)
        target[inside] = scores[rows[inside], targets[inside] - lo]  # before masking: the target is excluded
        held.append((lo, hi, scores))
    ahead = [torch.zeros(len(targets), dtype=torch.long, device=device) for _ in starts]
    later = ((lo, hi, model.score_all(vectors, tables, columns=slice(lo, hi))) for lo, hi in blocks[with_targets:])
    for lo, hi, scores in itertools.chain(held, later):
        mask_block(scores, lo, hi, *excluded)
        # ~(s < t): ties and NaN candidates count against the target, −inf non-candidates never do
        not_behind = ~(scores < target.unsqueeze(1))
        for count, first in zip(ahead, starts):
            count += not_behind[:, max(first - lo, 0) :].sum(1, dtype=torch.int32)
    finite = target.isfinite()
    if bool(finite.all()):
        return ahead
    every = [candidate_counts(histories, targets, last, first).to(device) for first in starts]
    return [torch.where(finite, count, all_of) for count, all_of in zip(ahead, every)]


def target_blocks_first(targets: torch.Tensor, width: int, last: int) -> tuple[list[tuple[int, int]], int]:
    """The (first, end) columns of every block of items 0..``last``, those holding a target first, and
    how many of those there are."""
    first = torch.unique(targets // width).tolist()
    order = first + sorted(set(range(last // width + 1)) - set(first))
    return [(b * width, min((b + 1) * width, last + 1)) for b in order], len(first)


def candidate_counts(histories: list[np.ndarray], targets: torch.Tensor, last: int, first: int = 0) -> torch.Tensor:
    """Per row, how many of items ``first``..``last`` (never the padding item 0) its target is compared
    with: all but its history and itself."""
    first = max(first, 1)
    seen = [int((np.union1d(h, [t]) >= first).sum()) for h, t in zip(histories, targets.tolist())]
    return (last - first + 1) - torch.tensor(seen, dtype=torch.long)


def excluded_pairs(
    batch: int, histories: list[np.ndarray], targets: torch.Tensor, device
) -> tuple[torch.Tensor, torch.Tensor]:
    """(rows, columns) of each row's history items and its target: never candidates of that row."""
    rows, columns = history_pairs(histories, device)
    return torch.cat([rows, torch.arange(batch, device=device)]), torch.cat([columns, targets])


def count_ahead(scores: torch.Tensor, target: torch.Tensor, candidates: torch.Tensor) -> torch.Tensor:
    """Per row, the candidates scored at least as high as the target (ties count against it).

    Comparisons with NaN are false, so without care a NaN target would rank first: a NaN
    candidate counts as ahead, and a non-finite target has every candidate ahead of it.
    """
    ahead = (scores >= target.unsqueeze(1)) | scores.isnan() | ~target.isfinite().unsqueeze(1)
    return (ahead & candidates).sum(1)
