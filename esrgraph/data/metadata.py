"""Readers for item metadata: a JSON object keyed by item id, JSON Lines, or CSV/TSV.

Each record becomes an :data:`ItemMeta` mapping with the fields named in the
config: ``title``, ``brand``, ``price`` and ``description`` as strings (or
``None`` when missing) and ``categories`` as a list of strings in source order.
Values are only cleaned of surrounding space here; the graph builder applies
its own normalisation to attribute values.
"""

from __future__ import annotations

import contextlib
import gc
import json
import logging
import re
import sys
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from ..errors import InputError
from .config import MetadataConfig
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

ItemMeta = dict[str, Any]
log = logging.getLogger(__name__)
TEXT_FIELDS = ("title", "brand", "price", "description")
# Values that repeat across items (a catalogue has far fewer brands than items) are
# interned, so a million records share one string per distinct value.
_SHARED_FIELDS = frozenset({"brand", "price"})


def read_metadata(cfg: MetadataConfig) -> tuple[dict[str, ItemMeta], dict[str, Any]]:
    """Read the configured metadata file; returns ``{item key: meta}`` and read statistics."""
    path = resolve_path(cfg.path)
    fmt = cfg.format if cfg.format != "auto" else detect_format(path, cfg.key)
    name = display_name(path)
    normalise = RecordNormaliser(cfg, name)
    records: dict[str, ItemMeta] = {}
    duplicates = 0
    with gc_paused():
        for key, raw, where in _RECORDS[fmt](path, cfg, fmt):
            if key in records:
                duplicates += 1  # real dumps repeat some products; the first record wins
                continue
            records[key] = normalise(raw, where)
    if not records:
        raise InputError(name, f"no item records found (read as {fmt})")
    normalise.warn()
    return records, {
        "format": fmt,
        "records": len(records),
        "duplicate_keys": duplicates,
        "category_paths_dropped": normalise.extra_paths,
        "object_values_ignored": dict(normalise.objects),
    }


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


def detect_format(path: Path, key: str | None) -> str:
    by_name = format_by_suffix(path, {".csv": "csv", ".tsv": "tsv", ".jsonl": "jsonl"})
    if by_name:
        return by_name
    _, first = next(iter_lines(path))
    try:
        obj = json.loads(first)
    except (json.JSONDecodeError, RecursionError):
        return "json"
    # One object per line carrying its own id field: JSON Lines (the Amazon dumps are named .json).
    return "jsonl" if isinstance(obj, dict) and (key or "asin") in obj else "json"


def _json_records(path: Path, cfg: MetadataConfig, fmt: str) -> Iterator[tuple[str, Any, dict]]:
    data = load_json_document(path)
    if not isinstance(data, dict):
        raise InputError(display_name(path), f"expected a JSON object keyed by item id, got {type(data).__name__}")
    for key, value in [*data.items(), *data.repeated]:  # repeats last: read_metadata counts them, the first wins
        yield str(key).strip(), value, {"key": key}


def _jsonl_records(path: Path, cfg: MetadataConfig, fmt: str) -> Iterator[tuple[str, Any, dict]]:
    key_field = cfg.key or "asin"
    name = display_name(path)
    for number, obj in iter_json_lines(path):
        if key_field not in obj:
            raise InputError(name, f"missing id field {key_field!r} (set dataset.metadata.key)", line=number)
        yield _record_key(obj[key_field], name, number), obj, {"line": number}


def _table_records(path: Path, cfg: MetadataConfig, fmt: str) -> Iterator[tuple[str, Any, dict]]:
    name = display_name(path)
    rows = iter_table(path, fmt)
    header_line, header = next(rows)
    check_header(name, header, header_line)
    key_field = cfg.key or header[0]
    if key_field not in header:
        raise InputError(name, f"missing id column {key_field!r}; the header has {header}", line=header_line)
    wanted = [c for c in _configured_fields(cfg).values() if c is not None]
    missing = [c for c in wanted if c not in header]
    if missing:
        raise InputError(
            name,
            f"missing column(s) {missing} named in dataset.metadata.fields; the header has {header}",
            line=header_line,
        )
    for number, row in rows:
        if len(row) != len(header):
            raise InputError(name, f"expected {len(header)} fields as in the header, got {len(row)}", line=number)
        obj = dict(zip(header, row))
        yield _record_key(obj[key_field], name, number), obj, {"line": number}


def _record_key(value: Any, name: str, line: int) -> str:
    if isinstance(value, bool) or not isinstance(value, (str, int)) or not str(value).strip():
        raise InputError(name, f"expected an item id (string or integer), got {json.dumps(value)}", line=line)
    return str(value).strip()


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
    """Turns a raw record into an :data:`ItemMeta` with the configured fields, and counts
    what it sets aside: category paths beyond an item's first, values given as objects."""

    def __init__(self, cfg: MetadataConfig, name: str):
        self.cfg, self.name = cfg, name
        self.fields = _configured_fields(cfg)
        self.split = _category_splitter(cfg)
        self.extra_paths = 0
        self.objects: Counter[str] = Counter()  # by field

    def __call__(self, raw: Any, where: dict) -> ItemMeta:
        if not isinstance(raw, dict):
            raise InputError(self.name, f"expected an object of item fields, got {type(raw).__name__}", **where)
        meta: ItemMeta = {}
        for field_name, source in self.fields.items():
            value = raw.get(source) if source is not None else None
            if field_name == "categories":
                paths = _path_count(value) if self.cfg.categories_are_path else 0
                if paths > 1:  # joining them would make one false path (beauty > makeup > beauty > skin care)
                    self.extra_paths += paths - 1
                    value = next(v for v in value if isinstance(v, (list, tuple)) and v)
                meta["categories"] = _categories(value, self.split)
                missing = not meta["categories"]
            else:
                text = _text(value)
                meta[field_name] = sys.intern(text) if text and field_name in _SHARED_FIELDS else text
                missing = text is None
            if missing and isinstance(value, dict):
                self.objects[field_name] += 1
        return meta

    def warn(self) -> None:
        if self.extra_paths:
            log.warning(
                "%s: %d category paths beyond each item's first were left out "
                "(one path per item when dataset.metadata.categories_are_path)",
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


_RECORDS = {"json": _json_records, "jsonl": _jsonl_records, "csv": _table_records, "tsv": _table_records}
