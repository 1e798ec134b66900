"""The prepared dataset's statistics as a person reads them (``esr prepare``)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

from .repeats import describe_repeats

if TYPE_CHECKING:
    from .dataset import Dataset


def summary_stats(ds: Dataset) -> dict[str, Any]:
    lengths = ds.lengths()
    tail_interactions = ds.tail_items[ds.items].sum()
    return {
        "users": ds.num_users,
        "items": ds.num_items,
        "interactions": int(lengths.sum()),
        "average_length": round(float(lengths.mean()), 3),
        "median_length": float(np.median(lengths)),
        "max_length": int(lengths.max()),
        "tail_user_share": round(float(ds.tail_users.mean()), 4),
        "tail_item_share": round(float(ds.tail_items[1:].mean()), 4),
        "tail_item_interaction_share": round(float(tail_interactions / lengths.sum()), 4),
    }


def describe(stats: dict[str, Any]) -> str:
    """Human-readable dataset statistics."""
    join, groups = stats["join"], stats["groups"]
    lines = [
        *_reading_lines(stats),
        f"users            {stats['users']:>10,}   (read {stats['users_read']:,}; "
        f"dropped {stats['users_dropped_short']:,} with too few interactions)",
        f"items            {stats['items']:>10,}",
        f"interactions     {stats['interactions']:>10,}" + _rows_read(stats.get("duplicates")),
        *_repeat_lines(stats.get("duplicates")),
        f"average length   {stats['average_length']:>10.2f}   "
        f"(median {stats['median_length']:g}, max {stats['max_length']:,})",
        f"metadata join    {join['items_with_metadata']:>10,} items with metadata ({join['coverage']:.1%}); "
        f"{join['items_without_metadata']:,} without (kept); {join['metadata_without_interactions_dropped']:,} "
        f"records of items nobody interacted with (dropped); ids compared as {join['key_type']}"
        + (
            f"; {repeats:,} repeated records (the first kept)"
            if (repeats := stats["metadata"].get("duplicate_keys"))
            else ""
        ),
        f"tail users       {stats['tail_user_share']:>10.1%}   "
        f"(history before test <= {groups['tail_user_max_length']})",
        f"tail items       {stats['tail_item_share']:>10.1%}   (popularity <= {groups['tail_item_max_popularity']}; "
        f"{stats['tail_item_interaction_share']:.1%} of interactions)",
        *_cold_lines(stats.get("cold_items")),
    ]
    return "\n".join(lines)


def _rows_read(counts: dict | None) -> str:
    return f"   (read {counts['rows_read']:,})" if counts else ""


def _repeat_lines(counts: dict | None) -> list[str]:
    """Statistics of runs prepared before the duplicates policy have no counts: no line."""
    return [describe_repeats(counts)] if counts else []


def _cold_lines(cold: dict | None) -> list[str]:
    if not cold or not cold["items"]:
        return []
    held = (
        (
            f"; {cold['held_out']:,} held out for the cold-item protocol, {cold['queries']:,} interactions "
            f"to rank, {cold['users_dropped_by_holdout']:,} users left with too few"
        )
        if cold["held_out"]
        else ""
    )
    return [f"cold items       {cold['items']:>10,}   (no interaction in the histories{held})"]


def _reading_lines(stats: dict[str, Any]) -> list[str]:
    """How the files were read: formats (and what a guess rested on), absent fields, categories."""
    meta = stats["metadata"]
    lines = []
    if "interaction_format_reason" in stats:  # statistics of older runs lack the readings
        lines.append(f"interactions     read as {stats['interaction_format']} ({stats['interaction_format_reason']})")
    if "format_reason" in meta:
        lines.append(f"metadata         read as {meta['format']} ({meta['format_reason']})")
    if meta.get("fields_absent"):
        absent = ", ".join(meta["fields_absent"])
        lines.append(f"fields absent    {absent} (no record has them: missing for every item)")
    if "category_reading" in stats and meta.get("records"):
        reading = stats["category_reading"]
        lines.append(f"categories       {'paths' if reading['path'] else 'flat tags'} ({reading['reason']})")
    return lines
