"""Normalising attribute values (brands, category levels) into node identities.

A raw value is unescaped (HTML entities, also when escaped twice as real dumps
do: ``loel&amp;reg``), stripped of HTML tags, put in Unicode NFKC form,
case-folded, and its whitespace collapsed. Placeholders (``unknown``, ``n/a``,
...) and values without any letter or digit mean "missing" and become ``None``.
Results are memoised per raw string: real catalogues repeat a few thousand
distinct brands over millions of items.
"""

from __future__ import annotations

import html
import re
import unicodedata
from collections.abc import Iterable, Sequence

# markup only: a tag opens with a letter, '/' or '!' ('a < b > c' is text, not a tag)
_TAG = re.compile(r"<[A-Za-z/!][^<>]*>")
# Entities inside entities (``&amp;#39;``) are rare; more rounds than this is garbage anyway.
_MAX_UNESCAPE_ROUNDS = 3


def normalise_text(raw: str) -> str:
    """The canonical form of one value (no placeholder check)."""
    text = raw
    for _ in range(_MAX_UNESCAPE_ROUNDS):
        if "&" not in text:
            break
        unescaped = html.unescape(text)
        if unescaped == text:
            break
        text = unescaped
    if "<" in text:
        text = _TAG.sub(" ", text)
    text = unicodedata.normalize("NFKC", text).casefold()
    return " ".join(text.split())


class Normaliser:
    """Maps raw values to normalised ones, ``None`` for missing; memoised."""

    def __init__(self, placeholders: Iterable[str]):
        self.placeholders = frozenset(normalise_text(p) for p in placeholders)
        self._memo: dict[str, str | None] = {}

    def __call__(self, raw: str | None) -> str | None:
        if raw is None:
            return None
        try:
            return self._memo[raw]
        except KeyError:
            pass
        text = normalise_text(raw)
        value = text if text not in self.placeholders and any(c.isalnum() for c in text) else None
        self._memo[raw] = value
        return value

    def path(self, levels: Sequence[str]) -> tuple[str, ...]:
        """A category path: normalised levels, repeats of the level above merged.

        The path stops at the first missing level: the levels under it cannot be
        placed. A level equal to its parent (``Gift Cards > Gift Cards``) is the
        source repeating itself, not a deeper category.
        """
        out: list[str] = []
        for raw in levels:
            value = self(raw)
            if value is None:
                break
            if not out or out[-1] != value:
                out.append(value)
        return tuple(out)
