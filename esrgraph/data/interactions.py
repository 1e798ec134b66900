"""Readers for user–item interaction files.

Every reader returns ``{user_id: [item_id, ...]}`` with string ids and each
user's items in chronological order. Formats:

``inter``           ``user item`` per line, lines in time order
``sequences``       ``user item item ...``, one line per user, items in time order
``json``            ``{"user": [item, ...]}``, items in time order
``csv`` / ``tsv``   a header row; user, item and time columns (stable sort by time)
``amazon-reviews``  JSON Lines review dump (``reviewerID``, ``asin``, ``unixReviewTime``)
"""

from __future__ import annotations

import json
import logging
import math
from collections.abc import Callable, Iterator
from datetime import datetime, timezone
from pathlib import Path

from ..errors import InputError
from .config import InteractionsConfig
from .files import (
    check_header,
    display_name,
    format_by_suffix,
    iter_json_lines,
    iter_lines,
    iter_table,
    load_json_document,
    resolve_path,
)

Sequences = dict[str, list[str]]
log = logging.getLogger(__name__)

# A first line of a whitespace format naming its columns, e.g. "user_id item_id":
# no real data starts with these words, so it is skipped rather than read as a user.
_USER_HEADERS = {"user", "userid", "uid", "reviewerid", "session", "sessionid"}
_ITEM_HEADERS = {"item", "itemid", "items", "itemids", "iid", "asin", "product", "productid"}

DEFAULT_COLUMNS = {
    "csv": ("user", "item", "timestamp"),
    "tsv": ("user", "item", "timestamp"),
    "amazon-reviews": ("reviewerID", "asin", "unixReviewTime"),
}


def read_interactions(cfg: InteractionsConfig) -> tuple[Sequences, str]:
    """Read the configured file; returns the sequences and the format used."""
    path = resolve_path(cfg.path)
    fmt = cfg.format if cfg.format != "auto" else detect_format(path)
    reader = _READERS[fmt]
    sequences = reader(path, cfg, fmt)
    if not sequences:
        raise InputError(display_name(path), f"no interactions found (read as {fmt})")
    return sequences, fmt


def detect_format(path: Path) -> str:
    by_name = format_by_suffix(path, {".csv": "csv", ".tsv": "tsv", ".jsonl": "amazon-reviews", ".json": "json"})
    if by_name == "json":
        return _json_kind(path)
    if by_name:
        return by_name
    for count, (_, line) in enumerate(iter_lines(path)):
        if len(line.split()) > 2:
            return "sequences"
        if count >= 1000:
            break
    return "inter"


def _json_kind(path: Path) -> str:
    """A whole-document JSON mapping, or JSON Lines (one review object a line)."""
    _, first = next(iter_lines(path))
    try:
        obj = json.loads(first)
    except (json.JSONDecodeError, RecursionError):
        return "json"
    return "amazon-reviews" if isinstance(obj, dict) and not _is_sequence_map(obj) else "json"


def _is_sequence_map(obj: dict) -> bool:
    return all(isinstance(v, list) for v in obj.values())


def _parse_id(token: object, name: str, line: int | None = None, key: str | None = None, what: str = "id") -> str:
    if isinstance(token, bool) or not isinstance(token, (str, int)):
        raise InputError(name, f"{what} must be a string or integer, got {json.dumps(token)}", line=line, key=key)
    text = str(token).strip()
    if not text:
        raise InputError(name, f"empty {what}", line=line, key=key)
    return text


def _data_lines(path: Path) -> Iterator[tuple[int, list[str]]]:
    """``(line_number, tokens)`` of a whitespace-separated file, a header line skipped."""
    first = True
    for number, line in iter_lines(path):
        tokens = line.split()
        if first and _is_header(tokens):
            log.warning("%s, line %d: %r names columns; skipped as a header", display_name(path), number, line.strip())
        else:
            yield number, tokens
        first = False


def _is_header(tokens: list[str]) -> bool:
    words = [t.casefold().strip(":#").replace("_", "").replace("-", "") for t in tokens]
    return len(words) >= 2 and words[0] in _USER_HEADERS and words[1] in _ITEM_HEADERS


def _read_inter(path: Path, cfg: InteractionsConfig, fmt: str) -> Sequences:
    name = display_name(path)
    sequences: Sequences = {}
    for number, tokens in _data_lines(path):
        if len(tokens) != 2:
            raise InputError(name, f"expected 'user item' (2 fields), got {len(tokens)} fields", line=number)
        sequences.setdefault(tokens[0], []).append(tokens[1])
    return sequences


def _read_sequences(path: Path, cfg: InteractionsConfig, fmt: str) -> Sequences:
    name = display_name(path)
    sequences: Sequences = {}
    for number, tokens in _data_lines(path):
        user, *items = tokens
        if not items:
            raise InputError(name, "expected 'user item item ...' (a user with at least one item)", line=number)
        if user in sequences:
            raise InputError(name, f"user {user!r} appears on more than one line", line=number)
        sequences[user] = items
    return sequences


def _read_json(path: Path, cfg: InteractionsConfig, fmt: str) -> Sequences:
    name = display_name(path)
    data = load_json_document(path)
    if not isinstance(data, dict):
        raise InputError(
            name, f"expected a JSON object mapping each user to a list of items, got {type(data).__name__}"
        )
    if data.repeated:
        raise InputError(
            name, "user appears more than once in the object (one list per user expected)", key=data.repeated[0][0]
        )
    sequences: Sequences = {}
    for user, items in data.items():
        if not isinstance(items, list):
            raise InputError(name, f"expected a list of items, got {type(items).__name__}", key=user)
        parsed = _parse_id(user, name, key=user, what="user id")
        if parsed in sequences:
            raise InputError(name, f"user {parsed!r} appears more than once (ids are trimmed)", key=user)
        if items:
            sequences[parsed] = [_parse_id(item, name, key=user, what="item id") for item in items]
    return sequences


def _read_table(path: Path, cfg: InteractionsConfig, fmt: str) -> Sequences:
    name = display_name(path)
    user_col, item_col, time_col = _columns(cfg, fmt)
    table = iter_table(path, fmt)
    header_line, header = next(table)
    check_header(name, header, header_line)
    missing = [c for c in (user_col, item_col, time_col) if c not in header]
    if missing:
        raise InputError(name, f"missing column(s) {missing}; the header has {header}", line=header_line)
    index = [header.index(c) for c in (user_col, item_col, time_col)]
    rows: dict[str, list[tuple[float, str]]] = {}
    for number, fields in table:
        if len(fields) != len(header):
            raise InputError(name, f"expected {len(header)} fields as in the header, got {len(fields)}", line=number)
        user = _parse_id(fields[index[0]], name, line=number, what="user id")
        item = _parse_id(fields[index[1]], name, line=number, what="item id")
        rows.setdefault(user, []).append((_parse_time(fields[index[2]], name, number, time_col), item))
    return _sort_by_time(rows)


def _read_amazon_reviews(path: Path, cfg: InteractionsConfig, fmt: str) -> Sequences:
    name = display_name(path)
    user_col, item_col, time_col = _columns(cfg, fmt)
    rows: dict[str, list[tuple[float, str]]] = {}
    for number, obj in iter_json_lines(path):
        missing = [c for c in (user_col, item_col, time_col) if c not in obj]
        if missing:
            raise InputError(name, f"missing field(s) {missing} in a review object", line=number)
        user = _parse_id(obj[user_col], name, line=number, what="user id")
        item = _parse_id(obj[item_col], name, line=number, what="item id")
        rows.setdefault(user, []).append((_parse_time(obj[time_col], name, number, time_col), item))
    return _sort_by_time(rows)


def _columns(cfg: InteractionsConfig, fmt: str) -> tuple[str, str, str]:
    default = DEFAULT_COLUMNS[fmt]
    chosen = (cfg.user_column, cfg.item_column, cfg.time_column)
    return tuple(c if c is not None else d for c, d in zip(chosen, default))  # type: ignore[return-value]


def _parse_time(value: object, name: str, line: int, column: str) -> float:
    try:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            stamp = float(value)
        else:
            stamp = _parse_time_text(str(value).strip())
    except OverflowError:
        raise InputError(name, f"{column} {value!r} is too large for a time", line=line) from None
    except ValueError:
        raise InputError(name, f"{column} {str(value).strip()!r} is not a number or an ISO date", line=line) from None
    if not math.isfinite(stamp):
        raise InputError(name, f"{column} must be finite, got {value!r}", line=line)
    return stamp


def _parse_time_text(text: str) -> float:
    try:
        return float(text)
    except ValueError:
        moment = datetime.fromisoformat(text)
    if moment.tzinfo is None:  # read as UTC, not the machine's zone: the order must not depend on where it runs
        moment = moment.replace(tzinfo=timezone.utc)
    return moment.timestamp()


def _sort_by_time(rows: dict[str, list[tuple[float, str]]]) -> Sequences:
    # sorted() is stable: interactions with equal times keep their file order.
    return {user: [item for _, item in sorted(events, key=lambda e: e[0])] for user, events in rows.items()}


_READERS: dict[str, Callable[[Path, InteractionsConfig, str], Sequences]] = {
    "inter": _read_inter,
    "sequences": _read_sequences,
    "json": _read_json,
    "csv": _read_table,
    "tsv": _read_table,
    "amazon-reviews": _read_amazon_reviews,
}
