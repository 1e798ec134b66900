"""Price strings to numbers, and numbers to buckets.

:func:`parse_price` reads ``12.99``, ``$12.99``, ``1,299.00``, ``€5``,
``12.99 EUR``, ``US$ 3`` and ranges such as ``$5.00 - $9.99`` (their
midpoint). Anything else (empty text, words, a decimal comma, a zero or
negative amount, page markup found in real dumps) is missing: ``None``, never
an exception. Bucket edges are ascending; bucket ``k`` holds prices from
``edges[k]`` up to, not including, ``edges[k + 1]``, the top bucket also its
upper edge, so the bucket index never decreases as the price grows.
"""

from __future__ import annotations

import math
import numbers
import re
import unicodedata
from decimal import Decimal

import numpy as np

_PLAIN = re.compile(r"\d+(?:\.\d+)?")
_NUMBER = r"(?:\d{1,3}(?:,\d{3})+|\d+)(?:\.\d*)?|\.\d+"
# A currency mark before or after the number: signs ($, €, ...) and codes (USD, US$, C$).
_MARK = r"[^\d\s.,\-–—]{0,4}"
# ISO codes a price is written with; the short prefixes only beside a sign (US$, C$, A$, HK$)
_CODES = {
    "USD",
    "EUR",
    "GBP",
    "JPY",
    "CNY",
    "RMB",
    "CAD",
    "AUD",
    "NZD",
    "CHF",
    "INR",
    "SEK",
    "NOK",
    "DKK",
    "PLN",
    "BRL",
    "MXN",
    "KRW",
    "HKD",
    "SGD",
    "ZAR",
    "RUB",
    "TRY",
    "CZK",
    "HUF",
    "ILS",
}
_SIGN_PREFIXES = {"US", "C", "A", "AU", "CA", "NZ", "HK", "S", "R"}


def _amount_pattern(name: str) -> str:
    return rf"(?P<{name}pre>{_MARK})\s*(?P<{name}num>{_NUMBER})\s*(?P<{name}post>{_MARK})"


_SINGLE = re.compile(_amount_pattern("a"))
_RANGE = re.compile(_amount_pattern("a") + r"\s*(?:-|–|—|to)\s*" + _amount_pattern("b"))
BUCKETINGS = ("quantile", "log")


def parse_price(text: object) -> float | None:
    """The price in ``text`` (a range gives its midpoint), or ``None`` when there is none."""
    if isinstance(text, bool) or text is None:
        return None
    if isinstance(text, (numbers.Real, Decimal)):  # JSON numbers, numpy scalars, Decimal
        return _positive(float(text))
    if not isinstance(text, str):
        return None
    text = text.strip()
    if len(text) > 64:  # real dumps put whole page fragments in the price field
        return None
    if _PLAIN.fullmatch(text):
        return _positive(float(text))
    text = unicodedata.normalize("NFKC", text)
    match = _SINGLE.fullmatch(text)
    if match:
        return _amount(match, "a")
    match = _RANGE.fullmatch(text)
    if match:
        low, high = _amount(match, "a"), _amount(match, "b")
        # a falling "range" is something else (a date such as 2021-05, a model number)
        return None if low is None or high is None or high < low else (low + high) / 2
    return None


def _amount(match: re.Match, name: str) -> float | None:
    if not (_is_mark(match[name + "pre"]) and _is_mark(match[name + "post"])):
        return None
    return _positive(float(match[name + "num"].replace(",", "")))


def _is_mark(text: str) -> bool:
    """Empty, currency signs, a currency code (any case), or a sign with its country prefix (``US$``)."""
    letters = "".join(c for c in text if unicodedata.category(c) != "Sc")
    if not letters:
        return True
    if not (letters.isascii() and letters.isalpha()):
        return False
    has_sign = len(letters) < len(text)
    return letters.upper() in _CODES or (has_sign and letters.upper() in _SIGN_PREFIXES)


def _positive(value: float) -> float | None:
    # A zero price is a placeholder in real data, never a real price.
    return value if math.isfinite(value) and value > 0 else None


def bucket_edges(prices: np.ndarray, buckets: int, method: str) -> np.ndarray:
    """Ascending bucket edges from the lowest to the highest price, repeats removed.

    ``quantile`` puts about the same number of items in each bucket (ties can
    merge buckets, hence fewer edges); ``log`` splits [min, max] into equal
    price ratios, which suits prices spread over orders of magnitude.
    """
    prices = np.asarray(prices, dtype=np.float64)
    if prices.size == 0:
        return np.empty(0, dtype=np.float64)
    low, high = float(prices.min()), float(prices.max())
    if method == "quantile":
        edges = np.quantile(prices, np.linspace(0.0, 1.0, buckets + 1))
    elif method == "log":
        edges = np.geomspace(low, high, buckets + 1)
    else:
        raise ValueError(f"price bucketing {method!r}; expected one of {BUCKETINGS}")
    # Exact ends whatever the rounding (geomspace can step past max by an ulp).
    return np.unique(np.clip(edges, low, high))


def num_buckets(edges: np.ndarray) -> int:
    return max(len(edges) - 1, 1) if len(edges) else 0


def assign_buckets(prices: np.ndarray, edges: np.ndarray) -> np.ndarray:
    """Bucket index of each price (``prices`` without missing values)."""
    index = np.searchsorted(edges, np.asarray(prices, dtype=np.float64), side="right") - 1
    return np.clip(index, 0, num_buckets(edges) - 1).astype(np.int64)


def bucket_bounds(edges: np.ndarray, bucket: int) -> tuple[float, float]:
    high = edges[bucket + 1] if bucket + 1 < len(edges) else edges[bucket]
    return float(edges[bucket]), float(high)


def bucket_label(low: float, high: float) -> str:
    """Display text of a bucket, e.g. ``5.99 to 12.00``."""
    return f"{low:.2f}" if low == high else f"{low:.2f} to {high:.2f}"
