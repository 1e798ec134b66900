"""Rendering item and user texts from metadata.

An item template is a list of parts such as ``"Brand: {brand}."``; a part that
names a missing field is left out, so no text reads ``Brand: .``.
"""

from __future__ import annotations

import html
import string
from collections.abc import Sequence

from ..data.dataset import Dataset
from ..data.metadata import ItemMeta

# Characters kept per token of the limit before tokenising: a token spans a few
# characters, so this never cuts what the tokenizer would keep, yet bounds the
# work spent on very long descriptions.
CHARS_PER_TOKEN = 10


def field_values(meta: ItemMeta | None, categories_are_path: bool) -> dict[str, str]:
    """The metadata fields as display strings; missing fields are absent."""
    if not meta:
        return {}
    values = {k: html.unescape(v) for k, v in meta.items() if isinstance(v, str) and v}
    categories = [html.unescape(c) for c in meta.get("categories") or []]
    if categories:
        values["categories"] = (" > " if categories_are_path else ", ").join(categories)
    return values


def render(template: str, values: dict[str, str]) -> str:
    names = [name for _, name, _, _ in string.Formatter().parse(template) if name]
    if any(name not in values for name in names):
        return ""
    return template.format(**{n: values[n] for n in names}).strip()


def item_text(
    meta: ItemMeta | None, parts: Sequence[str], categories_are_path: bool, fallback: str, max_chars: int
) -> str:
    values = field_values(meta, categories_are_path)
    text = " ".join(p for p in (render(part, values) for part in parts) if p)
    return (text or fallback)[:max_chars]


def item_texts(ds: Dataset, parts: Sequence[str], categories_are_path: bool, max_tokens: int) -> list[str]:
    """One text per canonical item 1..N (list index i - 1)."""
    max_chars = max_tokens * CHARS_PER_TOKEN
    return [
        item_text(meta, parts, categories_are_path, f"Item {raw}", max_chars)
        for meta, raw in zip(ds.item_meta, ds.item_ids)
    ]


def user_texts(
    ds: Dataset,
    item_template: str,
    separator: str,
    categories_are_path: bool,
    max_tokens: int,
    fallback_texts: Sequence[str],
) -> list[str]:
    """One text per user from the *training* items only, most recent first.

    Validation and test items never enter a user's text, so similar-user
    retrieval cannot leak the held-out targets.
    """
    max_chars = max_tokens * CHARS_PER_TOKEN
    per_item = [render(item_template, field_values(m, categories_are_path)) for m in ds.item_meta]
    texts = []
    for user in range(ds.num_users):
        pieces, size = [], 0
        for item in ds.train_sequence(user)[::-1]:
            piece = per_item[item - 1] or fallback_texts[item - 1]
            pieces.append(piece)
            size += len(piece) + len(separator)
            if size >= max_chars:
                break
        texts.append(separator.join(pieces)[:max_chars])
    return texts
