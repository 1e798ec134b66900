"""A catalogue's scores a block of items at a time: masking a block, and the top k merged across blocks.

Full ranking and recommending every user both need a user's score of every
item; one [users, catalogue] matrix of them is 4 GB for 1,024 users at a
million items. Scored a block of columns at a time, memory is bounded by the
block: ranking keeps a count per row, recommending keeps the k best so far.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch

COLUMNS_PER_PASS = 8192  # items scored per matrix product
ScoreBlock = Callable[[int, int], torch.Tensor]  # (first, end) item columns -> [B, end - first] scores


def history_pairs(histories: list[np.ndarray], device) -> tuple[torch.Tensor, torch.Tensor]:
    """(rows, columns) of each row's history items, as :func:`mask_block` and :func:`top_k_in_blocks`
    take them."""
    rows = np.repeat(np.arange(len(histories)), [len(h) for h in histories])
    columns = np.concatenate(histories).astype(np.int64) if histories else np.empty(0, dtype=np.int64)
    return torch.from_numpy(rows).to(device), torch.from_numpy(columns).to(device)


def mask_block(scores: torch.Tensor, lo: int, hi: int, rows: torch.Tensor, columns: torch.Tensor) -> None:
    """−inf on the block's non-candidates: each row's excluded items inside it, and the padding item 0."""
    inside = (columns >= lo) & (columns < hi)
    scores[rows[inside], columns[inside] - lo] = -float("inf")
    if lo == 0:
        scores[:, 0] = -float("inf")


def top_k_in_blocks(
    score_block: ScoreBlock,
    num_columns: int,
    k: int,
    excluded: tuple[torch.Tensor, torch.Tensor],
    width: int,
    allowed: torch.Tensor | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Per row, the ``k`` best-scored columns of 1..``num_columns`` − 1, best first: (scores, columns), each
    [B, k]. Never returned: ``excluded`` (rows, columns), the padding column 0 and, with ``allowed`` (a
    [num_columns] bool mask), every column it leaves out; they score −inf, so a row with fewer than ``k``
    candidates ends in −inf. The same as a top k of the whole masked matrix, with equal scores in column
    order (which of several equal scores take the last places is not fixed)."""
    if not 1 <= k < num_columns:
        raise ValueError(f"k must be between 1 and {num_columns - 1} (the columns that can be returned), got {k}")
    best = columns = None
    for lo in range(0, num_columns, width):
        hi = min(lo + width, num_columns)
        scores = score_block(lo, hi)
        mask_block(scores, lo, hi, *excluded)
        if allowed is not None:
            scores[:, ~allowed[lo:hi]] = -float("inf")
        top = torch.topk(scores, min(k, hi - lo), dim=1)
        values, found = top.values, top.indices + lo
        if best is not None:  # merge with the best so far
            values, found = torch.cat([best, values], dim=1), torch.cat([columns, found], dim=1)
            top = torch.topk(values, min(k, values.shape[1]), dim=1)
            values, found = top.values, torch.gather(found, 1, top.indices)
        best, columns = values, found
    # equal scores in column order, whichever block they came from
    by_column = torch.argsort(columns, dim=1)
    best, columns = torch.gather(best, 1, by_column), torch.gather(columns, 1, by_column)
    by_score = torch.sort(best, dim=1, descending=True, stable=True).indices
    return torch.gather(best, 1, by_score), torch.gather(columns, 1, by_score)
