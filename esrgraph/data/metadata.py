"""Readers for item metadata: a JSON object keyed by item id, JSON Lines (JSON or Python
literals), or a delimited table. Formats: docs/data-formats.md.

Each record becomes an :data:`ItemMeta` mapping with the fields named in the
config: ``title``, ``brand``, ``price`` and ``description`` as strings (or
``None`` when missing) and ``categories`` as a list of strings in source order.
Values are only cleaned of surrounding space here; the graph builder applies
its own normalisation to attribute values.

One rule for missing fields, whatever the format: a record without a field
(or with an empty cell) has no value for it. A field that no record has is
missing for every item (``fields_absent`` in the statistics) when it goes by
its default name (the file has no price, say); a name set in
``dataset.metadata.fields`` that no record has is an error, as a typo would be.
"""

from __future__ import annotations

import contextlib
import dataclasses
import difflib
import gc
import itertools
import json
import logging
import re
import sys
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable, Iterator
from typing import Any

from ..errors import ConfigError, InputError
from .config import MetadataConfig, MetadataFields
from .files import (
    Reading,
    Source,
    by_suffix,
    check_header,
    header_name,
    is_typed_header,
    iter_json_lines,
    iter_lines,
    iter_literal_lines,
    iter_table,
    load_json_document,
    naming_the_guess,
    parse_literal_object,
)
from .ids import parse_id

ItemMeta = dict[str, Any]
log = logging.getLogger(__name__)
SETTING = "dataset.metadata"
TEXT_FIELDS = ("title", "brand", "price", "description")
# Values that repeat across items (a catalogue has far fewer brands than items) are
# interned, so a million records share one string per distinct value.
_SHARED_FIELDS = frozenset({"brand", "price"})
# The id field of each JSON Lines format when dataset.metadata.key is unset.
DEFAULT_KEYS = {"jsonl": "asin", "amazon-2014": "asin", "amazon-2023": "parent_asin"}
DEFAULT_FIELDS = {f.name: f.default for f in dataclasses.fields(MetadataFields)}
# Records whose keys are kept to suggest a field name that was not found.
_KEYS_SAMPLED = 1000


def read_metadata(cfg: MetadataConfig) -> tuple[dict[str, ItemMeta], dict[str, Any]]:
    """Read the configured metadata file; returns ``{item key: meta}`` and read statistics."""
    source = Source.open(cfg.path, cfg.encoding, f"{SETTING}.encoding")
    reading = detect_format(source, cfg) if cfg.format == "auto" else Reading(cfg.format, None, f"{SETTING}.format")
    log.info("%s: read as %s", source.name, reading)
    normalise = RecordNormaliser(cfg, source.name)
    with naming_the_guess(reading):
        records, duplicates = _read_records(source, cfg, reading, normalise)
    normalise.warn()
    normalise.check_fields()
    return records, {
        "format": reading.format,
        "format_reason": reading.reason,
        "records": len(records),
        "duplicate_keys": duplicates,
        "fields_absent": normalise.absent(),
        "category_paths_dropped": normalise.extra_paths,
        "object_values_ignored": dict(normalise.objects),
        "category_reading": category_reading(
            cfg.categories_are_path, (m["categories"] for m in records.values()), normalise.nested
        ),
    }


def _read_records(
    source: Source, cfg: MetadataConfig, reading: Reading, normalise: RecordNormaliser
) -> tuple[dict[str, ItemMeta], int]:
    records: dict[str, ItemMeta] = {}
    duplicates = 0
    with gc_paused():
        for key, raw, where in _RECORDS[reading.format](source, cfg, reading):
            if key in records:
                duplicates += 1  # real dumps repeat some products; the first record wins
                continue
            records[key] = normalise(raw, where)
    if not records:
        raise InputError(source.name, f"no item records found (read as {reading.format})")
    return records, duplicates


@contextlib.contextmanager
def gc_paused() -> Iterator[None]:
    """No cyclic garbage collection inside the block (e.g. while a million records pile up).

    Records hold no reference cycles, yet every collection of the oldest
    generation walks all of them: reading was over a quarter slower with it.
    """
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


# ---------------------------------------------------------------- formats


def detect_format(source: Source, cfg: MetadataConfig) -> Reading:
    """The format of ``source``: from its name, a separator setting, else from its first line."""
    by_name = by_suffix(source.path, {".csv": "csv", ".tsv": "tsv"})
    if by_name:
        return _guess(*by_name)
    if cfg.separator is not None or cfg.columns is not None:
        key = f"{SETTING}.separator" if cfg.separator is not None else f"{SETTING}.columns"
        return _guess("tsv" if cfg.separator == "\t" else "csv", f"{key} being set")
    _, first = next(iter_lines(source))
    try:
        obj = json.loads(first)
    except (json.JSONDecodeError, RecursionError):
        return _not_json_kind(first)
    jsonl = source.path.name.lower().removesuffix(".gz").endswith(".jsonl")
    if not isinstance(obj, dict):
        return _guess("json", "the first line not a JSON object")
    if "parent_asin" in obj and cfg.key in (None, "parent_asin"):
        return _guess("amazon-2023", "the first line, a JSON object with parent_asin")
    if (cfg.key or "asin") in obj or jsonl:
        return _guess("jsonl", f"the first line, a JSON object with its own id field {cfg.key or 'asin'!r}")
    return _guess("json", "the first line, a whole JSON object keyed by item id")


def _not_json_kind(first: str) -> Reading:
    if first.lstrip().startswith("{") and parse_literal_object(first) is not None:
        return _guess("amazon-2014", "the first line, a Python literal object (single quotes), not JSON")
    if is_typed_header(first.split("\t")):
        return _guess("tsv", f"the typed header {first.strip()[:60]!r}")
    return _guess("json", "the content, a JSON document over several lines")


def _guess(fmt: str, seen: str) -> Reading:
    return Reading(fmt, seen, f"{SETTING}.format")


def _json_records(source: Source, cfg: MetadataConfig, reading: Reading) -> Iterator[tuple[str, Any, dict]]:
    data = load_json_document(source)
    if not isinstance(data, dict):
        raise InputError(source.name, f"expected a JSON object keyed by item id, got {type(data).__name__}")
    for key, value in [*data.items(), *data.repeated]:  # repeats last: read_metadata counts them, the first wins
        yield parse_id(key, source.name, key=key, what="item id"), value, {"key": key}


def _jsonl_records(source: Source, cfg: MetadataConfig, reading: Reading) -> Iterator[tuple[str, Any, dict]]:
    key_field = cfg.key or DEFAULT_KEYS[reading.format]
    lines = iter_literal_lines(source) if reading.format == "amazon-2014" else iter_json_lines(source)
    for number, obj in lines:
        if key_field not in obj:
            raise InputError(source.name, f"missing id field {key_field!r} (set {SETTING}.key)", line=number)
        if reading.format == "amazon-2023" and "store" in obj:
            obj.setdefault("brand", obj["store"])  # the 2023 dumps name the brand "store"
        yield parse_id(obj[key_field], source.name, line=number, what="item id"), obj, {"line": number}


def _table_records(source: Source, cfg: MetadataConfig, reading: Reading) -> Iterator[tuple[str, Any, dict]]:
    name = source.name
    separator = cfg.separator or (",", "\t")[reading.format == "tsv"]
    quoted = reading.format == "csv" and len(separator) == 1  # TSV has no quoting, nor a '::' table
    rows = iter_table(source, separator, quoted, reading.format.upper())
    header, header_line, where = _table_header(name, cfg, rows)
    key_field = cfg.key or header[0]
    if key_field not in header:
        raise InputError(name, f"missing id column {key_field!r}; the header has {header}", line=header_line)
    for number, row in rows:
        if len(row) != len(header):
            raise InputError(name, f"expected {len(header)} fields {where}, got {len(row)}", line=number)
        obj = dict(zip(header, row))
        yield parse_id(obj[key_field], name, line=number, what="item id"), obj, {"line": number}


def _table_header(name: str, cfg: MetadataConfig, rows: Iterator[tuple[int, list[str]]]):
    """The column names (the header row, or ``dataset.metadata.columns``), its line and how errors name it."""
    if cfg.columns is not None:
        repeated = sorted({c for c in cfg.columns if cfg.columns.count(c) > 1})
        if repeated or not cfg.columns:
            raise ConfigError(f"{SETTING}.columns: {cfg.columns} must name each column once")
        return list(cfg.columns), None, f"as named in {SETTING}.columns"
    header_line, first = next(rows)
    header = [header_name(c) for c in first]
    check_header(name, header, header_line)
    return header, header_line, "as in the header"


def _configured_fields(cfg: MetadataConfig) -> dict[str, str | None]:
    f = cfg.fields
    return {
        "title": f.title,
        "brand": f.brand,
        "categories": f.categories,
        "price": f.price,
        "description": f.description,
    }


class RecordNormaliser:
    """Turns a raw record into an :data:`ItemMeta` with the configured fields, and counts what
    it notices: fields the file has, category paths beyond an item's first, values given as objects."""

    def __init__(self, cfg: MetadataConfig, name: str):
        self.cfg, self.name = cfg, name
        self.fields = _configured_fields(cfg)
        self.named = {f: source for f, source in self.fields.items() if source is not None}
        self.split = _category_splitter(cfg)
        self.as_path = cfg.categories_are_path is not False  # auto reads lists of paths as paths
        self.extra_paths = 0
        self.nested = 0  # records whose categories are lists of paths
        self.objects: Counter[str] = Counter()  # by field
        self.present: set[str] = set()  # fields some record has
        self.keys_seen: set[str] = set()  # the keys of the first records, to suggest a name
        self.count = 0

    def __call__(self, raw: Any, where: dict) -> ItemMeta:
        if not isinstance(raw, dict):
            raise InputError(self.name, f"expected an object of item fields, got {type(raw).__name__}", **where)
        self._note_keys(raw)
        meta: ItemMeta = {}
        for field_name, source in self.fields.items():
            value = raw.get(source) if source is not None else None
            if field_name == "categories":
                meta["categories"] = self._categories(value)
                missing = not meta["categories"]
            else:
                text = _text(value)
                meta[field_name] = sys.intern(text) if text and field_name in _SHARED_FIELDS else text
                missing = text is None
            if missing and isinstance(value, dict):
                self.objects[field_name] += 1
        return meta

    def _note_keys(self, raw: dict) -> None:
        self.count += 1
        if self.count <= _KEYS_SAMPLED:
            self.keys_seen.update(map(str, raw))
        if len(self.present) < len(self.named):
            self.present.update(f for f, source in self.named.items() if source in raw)

    def _categories(self, value: Any) -> list[str]:
        paths = _path_count(value) if self.as_path else 0
        if paths:
            self.nested += 1
        if paths > 1:  # joining them would make one false path (beauty > makeup > beauty > skin care)
            self.extra_paths += paths - 1
            value = next(v for v in value if isinstance(v, (list, tuple)) and v)
        return _categories(value, self.split)

    def absent(self) -> dict[str, str]:
        """Configured fields that no record has: ``{field: source name}``."""
        return {f: s for f, s in self.named.items() if f not in self.present}

    def warn(self) -> None:
        if self.extra_paths:
            log.warning(
                "%s: %d category paths beyond each item's first were left out "
                "(one path per item when categories are read as paths)",
                self.name,
                self.extra_paths,
            )
        for field_name, count in self.objects.items():
            log.warning(
                "%s: %d records give %s (field %r) as an object, not text; read as missing",
                self.name,
                count,
                field_name,
                self.fields[field_name],
            )

    def check_fields(self) -> None:
        """A field name the config sets that no record has is a mistake (a typo, another dump's
        name): an error. A default name the file lacks is read as missing, and logged."""
        for field_name, source in self.absent().items():
            key = f"{SETTING}.fields.{field_name}"
            if source != DEFAULT_FIELDS[field_name]:
                others = sorted(self.keys_seen - set(self.named.values()))
                close = difflib.get_close_matches(source, others, n=1)
                hint = f"did you mean {close[0]!r}?" if close else f"the records have {others[:12]}"
                raise InputError(self.name, f"no record has the field {source!r} named by {key} ({hint})")
            log.info("%s: no record has a %r field; %s is missing for every item", self.name, source, field_name)


def _text(value: Any) -> str | None:
    if type(value) is str:  # by far the most common case, first
        return _clean(value)
    if value is None or isinstance(value, bool):
        return None
    if isinstance(value, (list, tuple)):
        parts = [t for t in (_text(v) for v in value) if t]
        return " ".join(parts) or None
    if isinstance(value, dict):
        return None
    return _clean(str(value))


def _clean(text: str) -> str | None:
    """Surrounding space removed, inner runs of whitespace collapsed to one space; None when empty."""
    text = text.strip()
    # Every whitespace character but the plain space is non-printable, so for most values
    # two quick scans prove that splitting and joining would change nothing.
    if "  " in text or not text.isprintable():
        text = " ".join(text.split())
    return text or None


def _category_splitter(cfg: MetadataConfig) -> Callable[[str], list[str]] | None:
    """How a categories string splits into names: by pattern, by separator, or not at all."""
    if cfg.category_pattern is not None:
        return re.compile(cfg.category_pattern).split
    separator = cfg.category_separator
    return (lambda text: text.split(separator)) if separator else None


def _path_count(value: Any) -> int:
    """Category paths in a list of lists (the 2014 Amazon dumps give an item several)."""
    if not isinstance(value, (list, tuple)):
        return 0
    return sum(1 for v in value if isinstance(v, (list, tuple)) and v)


def _categories(value: Any, split: Callable[[str], list[str]] | None) -> list[str]:
    if value is None or isinstance(value, (bool, dict)):
        return []
    if isinstance(value, (list, tuple)):
        out: list[str] = []
        for element in value:
            if type(element) is str:
                part = _clean(element)
                if part:
                    out.append(sys.intern(part))
            else:
                out.extend(_categories(element, None))
        return out
    text = str(value)
    parts = split(text) if split else [text]
    return [sys.intern(p) for p in map(_text, parts) if p]


# ---------------------------------------------------------------- paths or tags

# Detection reads the first items with two or more distinct categories, and the first levels
# of each: enough to see the order, and bounded on a million items or a long tag list.
_DETECT_ITEMS = 20_000
_DETECT_DEPTH = 8
# A path keeps every pair of its levels in one order; a tag list written in no fixed order
# shows pairs both ways. Sorted tags keep one order too, but then a name follows many
# different names, where a level of a path follows its one parent (names reused under
# several parents, as real trees do, keep this share near 0.9, not 1).
BOTH_ORDERS_MAX = 0.02
ONE_PARENT_MIN = 0.8


def category_reading(setting: bool | str, lists: Iterable[list[str]], nested: int) -> dict[str, Any]:
    """Which reading of the categories to use, and why: ``{"path", "setting", "reason"}``."""
    if isinstance(setting, bool):
        path, reason = setting, f"set by {SETTING}.categories_are_path"
    elif nested:
        path, reason = True, f"detected: {nested:,} records give categories as lists of paths"
    else:
        path, reason = detect_category_paths(lists)
        reason = "detected: " + reason
    return {"path": path, "setting": setting, "reason": reason}


def detect_category_paths(lists: Iterable[list[str]]) -> tuple[bool, str]:
    """Whether category lists read as paths from a root down (True) or as flat tag lists, and why."""
    multi = list(itertools.islice((c[:_DETECT_DEPTH] for c in lists if len(set(c)) >= 2), _DETECT_ITEMS))
    if not multi:
        return False, "no item has two or more categories, so there is no path to follow"
    ordered: set[tuple[str, str]] = set()
    parents: defaultdict[str, Counter[str]] = defaultdict(Counter)
    for cats in multi:
        for i, name in enumerate(cats):
            ordered.update((name, later) for later in cats[i + 1 :] if later != name)
            if i:
                parents[name][cats[i - 1]] += 1
    both = sum((b, a) in ordered for a, b in ordered) // 2
    pairs = len(ordered) - both
    if both > BOTH_ORDERS_MAX * pairs:
        return False, f"{both:,} of {pairs:,} category pairs ({both / pairs:.0%}) appear in both orders, as tags do"
    one_parent = sum(max(c.values()) for c in parents.values()) / sum(sum(c.values()) for c in parents.values())
    if one_parent < ONE_PARENT_MIN:
        return False, (
            f"each pair keeps one order, but only {one_parent:.0%} of the categories after the first follow "
            "their usual predecessor, as sorted tags do"
        )
    root, count = Counter(c[0] for c in multi).most_common(1)[0]
    return True, (
        f"{(pairs - both) / pairs:.1%} of {pairs:,} category pairs keep one order and {one_parent:.0%} of the "
        f"later categories follow one parent; the most common root, {root!r}, heads {count / len(multi):.0%} "
        "of the items"
    )


_RECORDS = {
    "json": _json_records,
    "jsonl": _jsonl_records,
    "amazon-2014": _jsonl_records,
    "amazon-2023": _jsonl_records,
    "csv": _table_records,
    "tsv": _table_records,
}
