"""Repeated interactions, under the ``dataset.duplicates`` policy.

A user's history may name one item more than once. Right after itself (a
double click, a review posted twice, a rating row repeated by an export) the
repeat says nothing about what comes next and counts the item twice towards
its popularity; ``drop_consecutive``, the default, removes those rows. A later
repeat (``a b a``) is a user coming back to an item, real re-consumption, and
is kept unless the policy is ``drop``, which keeps each item's first
interaction only; ``keep`` keeps every row.
"""

from __future__ import annotations

from typing import Any

Sequences = dict[str, list[str]]


def apply_policy(sequences: Sequences, policy: str) -> tuple[Sequences, dict[str, Any]]:
    """The sequences with repeats removed as ``policy`` says, and the counts the summary reports."""
    counts = {"policy": policy, "rows_read": 0, "repeats": 0, "consecutive": 0, "dropped": 0}
    kept: Sequences = {}
    for user, items in sequences.items():
        counts["rows_read"] += len(items)
        counts["repeats"] += len(items) - len(set(items))
        counts["consecutive"] += sum(a == b for a, b in zip(items, items[1:]))
        kept[user] = _kept(items, policy)
        counts["dropped"] += len(items) - len(kept[user])
    return kept, counts


def _kept(items: list[str], policy: str) -> list[str]:
    if policy == "drop_consecutive":
        return [item for i, item in enumerate(items) if i == 0 or item != items[i - 1]]
    if policy == "drop":
        return list(dict.fromkeys(items))  # first occurrences, in order
    return items


def describe_repeats(counts: dict[str, Any]) -> str:
    """The summary's line: rows repeating an item of their user, what the policy dropped and kept."""
    policy, later = counts["policy"], counts["repeats"] - counts["consecutive"]
    if policy == "keep":
        what = f"{counts['repeats']:>10,}   kept ({counts['consecutive']:,} of them right after the same item)"
    elif policy == "drop":
        what = f"{counts['dropped']:>10,}   dropped (each item's first interaction of a user kept)"
    else:
        what = f"{counts['dropped']:>10,}   dropped (right after the same item); {later:,} later repeats kept"
    return f"repeats          {what}; dataset.duplicates={policy}"
