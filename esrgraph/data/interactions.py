"""Readers for user–item interaction files.

Every reader returns ``{user_id: [item_id, ...]}`` with string ids and each
user's items in chronological order. Formats (docs/data-formats.md):

``inter``                ``user item`` per line, lines in time order
``sequences``            ``user item item ...``, one line per user, items in time order
``json``                 ``{"user": [item, ...]}``, items in time order
``csv`` / ``tsv``        a delimited table: user, item and time columns found by name in the
                         header (typed ``name:type`` cells too), or user first, item second and
                         time last without a header; stable sort by time
``amazon-reviews``       JSON Lines review dump (``reviewerID``, ``asin``, ``unixReviewTime``)
``amazon-reviews-2023``  JSON Lines review dump (``user_id``, ``parent_asin``, ``timestamp`` in ms)
"""

from __future__ import annotations

import itertools
import json
import logging
import math
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime, timezone

from ..errors import InputError
from .config import InteractionsConfig
from .files import (
    Reading,
    Source,
    by_suffix,
    check_header,
    header_name,
    is_typed_header,
    iter_json_lines,
    iter_lines,
    iter_table,
    load_json_document,
    naming_the_guess,
)
from .ids import CONTROL, check_printable, parse_id

Sequences = dict[str, list[str]]
log = logging.getLogger(__name__)
SETTING = "dataset.interactions"
FORMAT_KEY = f"{SETTING}.format"


def _names(*names: str) -> tuple[str, ...]:
    return tuple(_norm(n) for n in names)


def _norm(name: str) -> str:
    return name.casefold().strip(":#").replace("_", "").replace("-", "")


# Column names a header may use, normalised (case, '_' and '-' ignored), in order of preference.
# A first line of a whitespace format naming user and item (e.g. "user_id item_id") is skipped:
# no real data starts with these words.
USER_NAMES = _names("user", "user_id", "uid", "reviewerID", "session", "session_id", "visitor_id", "customer_id")
ITEM_NAMES = _names(
    "item", "item_id", "items", "item_ids", "iid", "parent_asin", "asin", "product", "product_id", "movie_id",
    "business_id", "book_id", "track_id",
)  # fmt: skip
TIME_NAMES = _names("timestamp", "time", "unixReviewTime", "datetime", "date", "ts")

ROLES = ("user", "item", "time")
DEFAULT_COLUMNS = {
    "csv": ("user", "item", "timestamp"),
    "tsv": ("user", "item", "timestamp"),
    "amazon-reviews": ("reviewerID", "asin", "unixReviewTime"),
    "amazon-reviews-2023": ("user_id", "parent_asin", "timestamp"),
}
# Separators looked for in a file whose lines hold no whitespace ("1::1193::5::978300760").
SNIFFED_SEPARATORS = ("::", "\t", ";", "|", ",")
SNIFF_LINES = 100
SNIFF_AGREEMENT = 0.9  # share of those lines with the table's width


def read_interactions(cfg: InteractionsConfig) -> tuple[Sequences, Reading]:
    """Read the configured file; returns the sequences and the format used (and why)."""
    source = Source.open(cfg.path, cfg.encoding, f"{SETTING}.encoding")
    columns = (cfg.user_column, cfg.item_column, cfg.time_column)
    reading = (
        detect_format(source, cfg.separator, columns) if cfg.format == "auto" else Reading(cfg.format, None, FORMAT_KEY)
    )
    log.info("%s: read as %s", source.name, reading)
    with naming_the_guess(reading):
        sequences = _READERS[reading.format](source, cfg, reading)
        if not sequences:
            raise InputError(source.name, f"no interactions found (read as {reading.format})")
    return sequences, reading


def detect_format(source: Source, separator: str | None = None, columns: tuple[str | None, ...] = ()) -> Reading:
    """The format of ``source``: from its name, else from its first lines (``columns``: the configured
    user, item and time columns, which a JSON Lines review dump may use)."""
    by_name = by_suffix(source.path, {".csv": "csv", ".tsv": "tsv", ".jsonl": "json", ".json": "json"})
    if by_name and by_name[0] == "json":
        return _json_kind(source, by_name[1], columns)
    if by_name:
        return _guess(*by_name)
    if separator is not None:
        return _guess("tsv" if separator == "\t" else "csv", f"{SETTING}.separator {separator!r}")
    _, first = next(iter_lines(source))
    if first.lstrip().startswith("{"):
        return _json_kind(source, "the first line starting with '{'", columns)
    if is_typed_header(first.split("\t")):
        return _guess("tsv", f"the typed header {first.strip()[:60]!r}")
    return _sniff_table(source) or _whitespace_kind(source)


def _guess(fmt: str, seen: str, separator: str | None = None) -> Reading:
    return Reading(fmt, seen, FORMAT_KEY, separator)


def _json_kind(source: Source, seen: str, columns: tuple[str | None, ...] = ()) -> Reading:
    """A whole-document JSON mapping, or JSON Lines (one review object a line)."""
    _, first = next(iter_lines(source))
    try:
        obj = json.loads(first)
    except (json.JSONDecodeError, RecursionError):
        return _guess("json", f"{seen}, the first line not a whole JSON value")
    if not isinstance(obj, dict) or _is_sequence_map(obj):
        return _guess("json", f"{seen}, the first line a mapping of users to lists")
    if {"user_id", "parent_asin"} <= obj.keys():
        return _guess("amazon-reviews-2023", f"{seen}, one object a line with user_id and parent_asin")
    if _names_a_review(obj, columns):
        return _guess("amazon-reviews", f"{seen}, one object a line with user and item fields")
    # neither lists nor a review's fields: a mapping of users whose values are wrong, which the json
    # reader names by key (read as reviews, it would be blamed on missing review fields)
    return _guess("json", f"{seen}, the first line an object with neither lists nor user and item fields")


def _is_sequence_map(obj: dict) -> bool:
    return all(isinstance(v, list) for v in obj.values())


def _names_a_review(obj: dict, columns: tuple[str | None, ...]) -> bool:
    """The object has a user and an item field: configured ones, or names a header may use."""
    if any(c is not None for c in columns):
        return any(c in obj for c in columns if c is not None)
    keys = {_norm(str(k)) for k in obj}
    return bool(keys & set(USER_NAMES)) and bool(keys & set(ITEM_NAMES))


def _sniff_table(source: Source) -> Reading | None:
    """A table split by something other than spaces ("1::1193::5::978300760"): lines that hold no
    space (or all hold a tab), nearly all of which split into one number (3 or more) of fields
    at one separator; the few others are left for the reader to report."""
    lines = [line for _, line in itertools.islice(iter_lines(source), SNIFF_LINES)]
    if not all("\t" in line for line in lines) and any(len(line.split()) != 1 for line in lines):
        return None
    for separator in SNIFFED_SEPARATORS:
        widths = Counter(len(line.split(separator)) for line in lines)
        width, count = widths.most_common(1)[0]
        if width >= 3 and count >= SNIFF_AGREEMENT * len(lines) and min(widths) >= 2:
            seen = f"the content: {count} of the first {len(lines)} lines split into {width} fields at {separator!r}"
            return _guess("tsv" if separator == "\t" else "csv", seen, separator)
    return None


def _whitespace_kind(source: Source) -> Reading:
    for count, (number, line) in enumerate(iter_lines(source)):
        if len(line.split()) > 2:
            return _guess("sequences", f"the content: line {number} holds more than two fields")
        if count >= 1000:
            break
    return _guess("inter", "the content: no line holds more than two fields")


def _data_lines(source: Source, separator: str | None) -> Iterator[tuple[int, list[str]]]:
    """``(line_number, tokens)`` of a whitespace (or ``separator``) split file, a header line skipped."""
    first = True
    for number, line in iter_lines(source):
        # empty fields are skipped, as runs of spaces are ("u1, 1, 2," is u1 with items 1 and 2)
        tokens = [t for t in (t.strip() for t in line.split(separator)) if t] if separator else line.split()
        if CONTROL.search(line.replace("\t", "")):  # checked by line first: one search a line, not a token
            for at, token in enumerate(tokens):  # the user first, then items, in both whitespace formats
                check_printable(token, source.name, number, what="item id" if at else "user id")
        if first and _is_header(tokens):
            log.warning("%s, line %d: %r names columns; skipped as a header", source.name, number, line.strip())
        else:
            yield number, tokens
        first = False


def _is_header(tokens: list[str]) -> bool:
    words = [_norm(header_name(t)) for t in tokens]
    return len(words) >= 2 and words[0] in USER_NAMES and words[1] in ITEM_NAMES


def _read_inter(source: Source, cfg: InteractionsConfig, reading: Reading) -> Sequences:
    sequences: Sequences = {}
    for number, tokens in _data_lines(source, cfg.separator):
        if len(tokens) != 2:
            raise InputError(source.name, f"expected 'user item' (2 fields), got {len(tokens)} fields", line=number)
        sequences.setdefault(tokens[0], []).append(tokens[1])
    return sequences


def _read_sequences(source: Source, cfg: InteractionsConfig, reading: Reading) -> Sequences:
    sequences: Sequences = {}
    for number, tokens in _data_lines(source, cfg.separator):
        user, *items = tokens
        if not items:
            raise InputError(source.name, "expected 'user item item ...' (a user with at least one item)", line=number)
        if user in sequences:
            raise InputError(source.name, f"user {user!r} appears on more than one line", line=number)
        sequences[user] = items
    return sequences


def _read_json(source: Source, cfg: InteractionsConfig, reading: Reading) -> Sequences:
    name = source.name
    data = load_json_document(source)
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
        parsed = parse_id(user, name, key=user, what="user id")
        if parsed in sequences:
            raise InputError(name, f"user {parsed!r} appears more than once (ids are trimmed)", key=user)
        if items:
            sequences[parsed] = [parse_id(item, name, key=user, what="item id") for item in items]
    return sequences


# ---------------------------------------------------------------- tables


@dataclass(frozen=True)
class TableLayout:
    """Where a table's user, item and time fields are, and whether its first row is a header."""

    index: tuple[int, int, int]
    time_name: str  # names the time field in errors
    width: int  # fields per row
    header: bool


def _read_table(source: Source, cfg: InteractionsConfig, reading: Reading) -> Sequences:
    separator = cfg.separator or reading.separator or (",", "\t")[reading.format == "tsv"]
    quoted = reading.format == "csv" and len(separator) == 1  # TSV has no quoting, nor a '::' table
    rows = iter_table(source, separator, quoted, reading.format.upper())
    first_line, first = next(rows)
    layout = _table_layout(source.name, cfg, reading.format, first, first_line)
    events: dict[str, list[tuple[float, str]]] = {}
    if not layout.header:
        _add_event(events, source.name, layout, first_line, first)
    for number, fields in rows:
        _add_event(events, source.name, layout, number, fields)
    return _sort_by_time(events)


def _add_event(events: dict, name: str, layout: TableLayout, number: int, fields: list[str]) -> None:
    if len(fields) != layout.width:
        where = "as in the header" if layout.header else "as on the first line"
        raise InputError(name, f"expected {layout.width} fields {where}, got {len(fields)}", line=number)
    user_at, item_at, time_at = layout.index
    user = parse_id(fields[user_at], name, line=number, what="user id")
    item = parse_id(fields[item_at], name, line=number, what="item id")
    events.setdefault(user, []).append((_parse_time(fields[time_at], name, number, layout.time_name), item))


def _table_layout(name: str, cfg: InteractionsConfig, fmt: str, first: list[str], line: int) -> TableLayout:
    """The columns of a table from its first row: a header naming them, or the first data row."""
    header = [header_name(c) for c in first]
    if _headerless(cfg, header):
        log.info("%s: no header row; user, item and time are the first, second and last fields", name)
        return TableLayout((0, 1, len(header) - 1), "time (the last field)", len(header), False)
    check_header(name, header, line)
    found: dict[str, int] = {}
    missing: dict[str, str] = {}  # role: the name looked for
    for role, (configured, default), names in zip(ROLES, _columns(cfg, fmt), (USER_NAMES, ITEM_NAMES, TIME_NAMES)):
        at = _find_column(header, configured, names)
        if at is None:
            missing[role] = configured or default
        else:
            found[role] = at
    if missing:
        keys = ", ".join(f"{SETTING}.{role}_column" for role in missing)
        raise InputError(
            name, f"missing column(s) {list(missing.values())}; the header has {header} (set {keys})", line=line
        )
    index = (found["user"], found["item"], found["time"])
    log.info("%s: columns user %r, item %r, time %r", name, *(header[i] for i in index))
    return TableLayout(index, header[index[2]], len(header), True)


def _columns(cfg: InteractionsConfig, fmt: str) -> list[tuple[str | None, str]]:
    """(configured name or None, default name) of user, item and time."""
    chosen = (cfg.user_column, cfg.item_column, cfg.time_column)
    return list(zip(chosen, DEFAULT_COLUMNS[fmt]))


def _find_column(header: list[str], configured: str | None, names: tuple[str, ...]) -> int | None:
    """The position of the configured column, or of the first of ``names`` the header has."""
    if configured is not None:
        return header.index(configured) if configured in header else None
    normalised = [_norm(c) for c in header]
    return next((normalised.index(n) for n in names if n in normalised), None)


def _headerless(cfg: InteractionsConfig, first: list[str]) -> bool:
    """A first row of data, not names: three or more fields, none a known column name, the last a time."""
    if any(c is not None for c in (cfg.user_column, cfg.item_column, cfg.time_column)) or len(first) < 3:
        return False
    if any(_norm(c) in USER_NAMES + ITEM_NAMES + TIME_NAMES for c in first):
        return False
    try:
        _parse_time_text(first[-1].strip())
    except (ValueError, OverflowError):
        return False
    return True


# ---------------------------------------------------------------- JSON Lines review dumps


def _read_json_lines(source: Source, cfg: InteractionsConfig, reading: Reading) -> Sequences:
    name = source.name
    user_col, item_col, time_col = (c if c is not None else d for c, d in _columns(cfg, reading.format))
    rows: dict[str, list[tuple[float, str]]] = {}
    for number, obj in iter_json_lines(source):
        missing = [c for c in (user_col, item_col, time_col) if c not in obj]
        if missing:
            raise InputError(name, f"missing field(s) {missing} in a review object", line=number)
        user = parse_id(obj[user_col], name, line=number, what="user id")
        item = parse_id(obj[item_col], name, line=number, what="item id")
        rows.setdefault(user, []).append((_parse_time(obj[time_col], name, number, time_col), item))
    return _sort_by_time(rows)


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


_READERS: dict[str, Callable[[Source, InteractionsConfig, Reading], Sequences]] = {
    "inter": _read_inter,
    "sequences": _read_sequences,
    "json": _read_json,
    "csv": _read_table,
    "tsv": _read_table,
    "amazon-reviews": _read_json_lines,
    "amazon-reviews-2023": _read_json_lines,
}
