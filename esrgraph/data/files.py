"""Opening input files: bundled resources, transparent gzip, strict UTF-8 with line numbers."""

from __future__ import annotations

import csv
import gzip
import json
import os
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from ..errors import InputError
from .config import BUNDLED_PREFIX

RESOURCES = Path(__file__).resolve().parent.parent / "resources"
_GZIP_MAGIC = b"\x1f\x8b"
# what a damaged or truncated (gzip) file raises while it is read
_READ_ERRORS = (OSError, EOFError, gzip.BadGzipFile, zlib.error)


def resolve_path(path: str) -> Path:
    """Turn a config path (possibly ``bundled:<name>``) into an existing file path."""
    if path.startswith(BUNDLED_PREFIX):
        resolved = RESOURCES / path[len(BUNDLED_PREFIX) :]
        if not resolved.is_file():
            available = sorted(str(p.relative_to(RESOURCES)) for p in RESOURCES.rglob("*.gz"))
            raise InputError(path, f"no such bundled file; bundled: {', '.join(available)}")
        return resolved
    resolved = Path(path)
    if not resolved.exists():
        raise InputError(path, "file not found")
    if not resolved.is_file():
        raise InputError(path, "not a file")
    return resolved


def display_name(path: str | os.PathLike) -> str:
    """A short, stable name for messages (bundled files keep their ``bundled:`` name)."""
    text = str(path)
    try:
        return BUNDLED_PREFIX + str(Path(text).resolve().relative_to(RESOURCES))
    except ValueError:
        return text


def format_by_suffix(path: Path, formats: dict[str, str]) -> str | None:
    """The format whose suffix the file name ends with (ignoring ``.gz``), if any."""
    name = path.name.lower().removesuffix(".gz")
    return next((fmt for suffix, fmt in formats.items() if name.endswith(suffix)), None)


def is_gzip(path: Path) -> bool:
    with open(path, "rb") as handle:
        return handle.read(2) == _GZIP_MAGIC


def read_bytes(path: Path) -> bytes:
    try:
        if is_gzip(path):
            with gzip.open(path, "rb") as handle:
                return handle.read()
        return path.read_bytes()
    except _READ_ERRORS as exc:
        raise InputError(display_name(path), f"cannot read the file ({exc})") from None


def read_text(path: Path) -> str:
    """The whole file as text; non-UTF-8 bytes are an error naming the line."""
    data = read_bytes(path)
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        raise InputError(
            display_name(path), f"not UTF-8 text (byte 0x{data[exc.start]:02x} cannot be decoded)", line=line
        ) from None
    if not text.strip():
        raise InputError(display_name(path), "the file is empty")
    return text.lstrip("\ufeff")


def _open_binary(path: Path):
    return gzip.open(path, "rb") if is_gzip(path) else open(path, "rb")


def iter_lines(path: Path) -> Iterator[tuple[int, str]]:
    """Stream ``(line_number, text)`` for every non-blank line, decoding UTF-8 strictly."""
    name = display_name(path)
    seen_any = False
    try:
        with _open_binary(path) as handle:
            for number, raw in enumerate(handle, start=1):
                try:
                    line = raw.decode("utf-8")
                except UnicodeDecodeError as exc:
                    raise InputError(
                        name, f"not UTF-8 text (byte 0x{raw[exc.start]:02x} cannot be decoded)", line=number
                    ) from None
                if number == 1:
                    line = line.lstrip("\ufeff")
                if line.strip():
                    seen_any = True
                    yield number, line.rstrip("\r\n")
    except _READ_ERRORS as exc:
        raise InputError(name, f"cannot read the file ({exc})") from None
    if not seen_any:
        raise InputError(name, "the file is empty")


def iter_table(path: Path, fmt: str) -> Iterator[tuple[int, list[str]]]:
    """``(line_number, fields)`` of each row of a CSV or TSV file, the header first.

    One reader over the whole file, so a quoted CSV cell may span lines (the row
    is numbered by its first line). CSV quoting is strict: a quote left open
    is an error, not a cell that swallows the rows after it. TSV has no quoting.
    """
    name = display_name(path)
    first_line = [0]  # the line number of the row being read: set when its first line is pulled

    def physical() -> Iterator[str]:
        for number, text in iter_lines(path):
            if first_line[0] == 0:
                first_line[0] = number
            yield text + "\n"

    quoting = csv.QUOTE_NONE if fmt == "tsv" else csv.QUOTE_MINIMAL
    reader = csv.reader(physical(), delimiter="\t" if fmt == "tsv" else ",", quoting=quoting, strict=True)
    while True:
        first_line[0] = 0
        try:
            row = next(reader)
        except StopIteration:
            return
        except csv.Error as exc:
            raise InputError(name, f"malformed {fmt.upper()} row ({exc})", line=first_line[0] or None) from None
        yield first_line[0], row


def check_header(name: str, header: list[str], line: int) -> None:
    """A CSV header names each column once: a repeated name would make the columns ambiguous."""
    repeated = sorted({c for c in header if header.count(c) > 1})
    if repeated:
        raise InputError(name, f"column(s) {repeated} appear more than once in the header", line=line)


class JsonObject(dict):
    """A JSON object that keeps a key's first value and sets its later ones aside
    (``repeated``: key, value pairs), where a plain dict would keep the last silently."""

    repeated: tuple[tuple[str, Any], ...] = ()


def _object(pairs: list[tuple[str, Any]]) -> JsonObject:
    obj = JsonObject(pairs)
    if len(obj) < len(pairs):  # rare: rebuild keeping first values
        obj, later = JsonObject(), []
        for key, value in pairs:
            if key in obj:
                later.append((key, value))
            else:
                obj[key] = value
        obj.repeated = tuple(later)
    return obj


def load_json_document(path: Path) -> Any:
    """The whole file as one JSON value; its objects are ``JsonObject``s."""
    text = read_text(path)
    try:
        return json.loads(text, object_pairs_hook=_object)
    except json.JSONDecodeError as exc:
        raise InputError(
            display_name(path), f"malformed JSON ({exc.msg}, column {exc.colno})", line=exc.lineno
        ) from None
    except RecursionError:
        raise InputError(display_name(path), "malformed JSON (nested too deeply to read)") from None


def iter_json_lines(path: Path) -> Iterator[tuple[int, dict]]:
    """Yield ``(line_number, object)`` for a JSON Lines file; every line must be an object."""
    name = display_name(path)
    for number, line in iter_lines(path):
        try:
            obj = json.loads(line)
        except json.JSONDecodeError as exc:
            raise InputError(name, f"malformed JSON ({exc.msg}, column {exc.colno})", line=number) from None
        except RecursionError:
            raise InputError(name, "malformed JSON (nested too deeply to read)", line=number) from None
        if not isinstance(obj, dict):
            raise InputError(name, f"expected a JSON object on each line, got {type(obj).__name__}", line=number)
        yield number, obj
