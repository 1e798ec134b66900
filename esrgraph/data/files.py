"""Opening input files: bundled resources, transparent gzip, strict decoding with line numbers.

A :class:`Source` is a resolved file with the text encoding it is read in; every
reader goes through it, so a byte that does not decode is an error naming the
file, the line and the setting that changes the encoding.
"""

from __future__ import annotations

import ast
import codecs
import contextlib
import csv
import errno
import functools
import gzip
import json
import os
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..errors import ConfigError, InputError
from .config import BUNDLED_PREFIX

RESOURCES = Path(__file__).resolve().parent.parent / "resources"
_GZIP_MAGIC = b"\x1f\x8b"
# what a damaged or truncated (gzip) file raises while it is read
_READ_ERRORS = (OSError, EOFError, gzip.BadGzipFile, zlib.error)
# what ast.literal_eval raises on a line that is no Python literal
_LITERAL_ERRORS = (SyntaxError, ValueError, TypeError, MemoryError, RecursionError)


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
        raise InputError(path, why_missing(resolved))
    if not resolved.is_file():
        raise InputError(path, "not a file")
    return resolved


def why_missing(path: Path) -> str:
    """Why ``path``, which does not exist as far as ``Path.exists`` says, cannot be opened: a link that
    loops or points nowhere reads as "file not found" otherwise."""
    try:
        os.stat(path)
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            return "a symbolic link loop (too many levels of symbolic links)"
        if os.path.islink(path):
            return f"a symbolic link to {os.readlink(path)}, which does not exist"
        if exc.errno == errno.ENOTDIR:
            return "not found (a folder on its path is a file)"
    return "file not found"


def display_name(path: str | os.PathLike) -> str:
    """A short, stable name for messages (bundled files keep their ``bundled:`` name)."""
    text = str(path)
    try:
        return BUNDLED_PREFIX + str(Path(text).resolve().relative_to(RESOURCES))
    except ValueError:
        return text


@dataclass(frozen=True)
class Source:
    """An input file and how its bytes become text; ``setting`` is the key that sets the encoding."""

    path: Path
    encoding: str = "utf-8"
    setting: str = "the encoding"

    @classmethod
    def open(cls, path: str, encoding: str, setting: str) -> Source:
        """The configured file, checked to exist, with a known encoding."""
        try:
            codec = codecs.lookup(encoding).name
        except LookupError:
            raise ConfigError(f"{setting}: {encoding!r} is not a known text encoding (e.g. utf-8, latin-1)") from None
        return cls(resolve_path(path), codec, setting)

    @functools.cached_property
    def name(self) -> str:  # resolving the path is slow enough to matter once a record
        return display_name(self.path)

    def decode_error(self, data: bytes, exc: UnicodeDecodeError, line: int) -> InputError:
        label = "UTF-8" if self.encoding == "utf-8" else self.encoding
        return InputError(
            self.name,
            f"not {label} text (byte 0x{data[exc.start]:02x} cannot be decoded); "
            f"if the file uses another encoding, set {self.setting} (e.g. latin-1)",
            line=line,
        )


@dataclass(frozen=True)
class Reading:
    """The format a file is read as and why: the setting that names it, or what detection saw."""

    format: str
    seen: str | None = None  # what the guess rests on ("the file name ending .csv"); None: set by the config
    setting: str = "the format setting"
    separator: str | None = None  # a field separator found in the content

    @property
    def guessed(self) -> bool:
        return self.seen is not None

    @property
    def reason(self) -> str:
        return f"guessed from {self.seen}" if self.guessed else f"set by {self.setting}"

    def __str__(self) -> str:
        return f"{self.format} ({self.reason})"


@contextlib.contextmanager
def naming_the_guess(reading: Reading) -> Iterator[None]:
    """Read errors inside the block also say which format was guessed, and from what: a wrong
    guess reads as a broken file otherwise."""
    try:
        yield
    except InputError as exc:
        if reading.guessed:
            exc.args = (f"{exc} (read as {reading.format}, {reading.reason}; set {reading.setting} if that is wrong)",)
        raise


def by_suffix(path: Path, formats: dict[str, str]) -> tuple[str, str] | None:
    """The format whose suffix the file name ends with (ignoring ``.gz``), and what was seen."""
    name = path.name.lower().removesuffix(".gz")
    return next(((fmt, f"the file name ending {s}") for s, fmt in formats.items() if name.endswith(s)), None)


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


def read_text(source: Source) -> str:
    """The whole file as text; bytes that do not decode are an error naming the line."""
    data = read_bytes(source.path)
    try:
        text = data.decode(source.encoding)
    except UnicodeDecodeError as exc:
        line = data[: exc.start].decode(source.encoding, errors="replace").count("\n") + 1
        raise source.decode_error(data, exc, line) from None
    if not text.strip():
        raise InputError(source.name, "the file is empty")
    return text.lstrip("\ufeff")


def _open_binary(path: Path):
    return gzip.open(path, "rb") if is_gzip(path) else open(path, "rb")


def _line_based(encoding: str) -> bool:
    """Whether each line can be decoded alone: a newline is the single byte 0x0a (not so in UTF-16)."""
    return "\n".encode(encoding) == b"\n" and "a".encode(encoding) == b"a"


def iter_lines(source: Source) -> Iterator[tuple[int, str]]:
    """Stream ``(line_number, text)`` for every non-blank line, decoding strictly."""
    lines = _decoded_lines(source) if _line_based(source.encoding) else _split_lines(source)
    seen_any = False
    for number, line in lines:
        if number == 1:
            line = line.lstrip("\ufeff")
        if line.strip():
            seen_any = True
            yield number, line.rstrip("\r\n")
    if not seen_any:
        raise InputError(source.name, "the file is empty")


def _decoded_lines(source: Source) -> Iterator[tuple[int, str]]:
    try:
        with _open_binary(source.path) as handle:
            for number, raw in enumerate(handle, start=1):
                try:
                    yield number, raw.decode(source.encoding)
                except UnicodeDecodeError as exc:
                    raise source.decode_error(raw, exc, number) from None
    except _READ_ERRORS as exc:
        raise InputError(source.name, f"cannot read the file ({exc})") from None


def _split_lines(source: Source) -> Iterator[tuple[int, str]]:
    text = read_text(source)
    yield from enumerate(text.split("\n"), start=1)


def iter_table(source: Source, delimiter: str, quoted: bool, label: str) -> Iterator[tuple[int, list[str]]]:
    """``(line_number, fields)`` of each row of a delimited table, the first row first.

    A one-character delimiter goes through one CSV reader over the whole file, so
    a quoted cell (``quoted``) may span lines (the row is numbered by its first
    line); quoting is strict: a quote left open is an error, not a cell that
    swallows the rows after it. A longer delimiter (``::``) splits each line as it is.
    """
    if len(delimiter) > 1:
        yield from ((number, line.split(delimiter)) for number, line in iter_lines(source))
        return
    first_line = [0]  # the line number of the row being read: set when its first line is pulled

    def physical() -> Iterator[str]:
        for number, text in iter_lines(source):
            if first_line[0] == 0:
                first_line[0] = number
            yield text + "\n"

    quoting = csv.QUOTE_MINIMAL if quoted else csv.QUOTE_NONE
    reader = csv.reader(physical(), delimiter=delimiter, quoting=quoting, strict=True)
    while True:
        first_line[0] = 0
        try:
            row = next(reader)
        except StopIteration:
            return
        except csv.Error as exc:
            raise InputError(source.name, f"malformed {label} row ({exc})", line=first_line[0] or None) from None
        yield first_line[0], row


def check_header(name: str, header: list[str], line: int) -> None:
    """A header names each column once: a repeated name would make the columns ambiguous."""
    repeated = sorted({c for c in header if header.count(c) > 1})
    if repeated:
        raise InputError(name, f"column(s) {repeated} appear more than once in the header", line=line)


# A typed header cell, e.g. "user_id:token" or "timestamp:float": the name before the colon.
TYPED_HEADER_TYPES = ("token", "token_seq", "float", "float_seq")


def header_name(cell: str) -> str:
    """A header cell without a ``:type`` suffix (``item_id:token`` -> ``item_id``)."""
    name, colon, kind = cell.strip().rpartition(":")
    return name if colon and name and kind in TYPED_HEADER_TYPES else cell.strip()


def is_typed_header(cells: list[str]) -> bool:
    return len(cells) >= 2 and all(header_name(c) != c.strip() for c in cells)


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


def load_json_document(source: Source) -> Any:
    """The whole file as one JSON value; its objects are ``JsonObject``s."""
    text = read_text(source)
    try:
        return json.loads(text, object_pairs_hook=_object)
    except json.JSONDecodeError as exc:
        raise InputError(source.name, f"malformed JSON ({exc.msg}, column {exc.colno})", line=exc.lineno) from None
    except RecursionError:
        raise InputError(source.name, "malformed JSON (nested too deeply to read)") from None


def iter_json_lines(source: Source) -> Iterator[tuple[int, dict]]:
    """Yield ``(line_number, object)`` for a JSON Lines file; every line must be an object."""
    for number, line in iter_lines(source):
        try:
            obj = json.loads(line)
        except json.JSONDecodeError as exc:
            raise InputError(source.name, f"malformed JSON ({exc.msg}, column {exc.colno})", line=number) from None
        except RecursionError:
            raise InputError(source.name, "malformed JSON (nested too deeply to read)", line=number) from None
        if not isinstance(obj, dict):
            raise InputError(source.name, f"expected a JSON object on each line, got {type(obj).__name__}", line=number)
        yield number, obj


def parse_literal_object(line: str) -> dict | None:
    """A line holding one Python literal dict (``{'asin': 'x'}``), or None. Never evaluates code."""
    try:
        obj = ast.literal_eval(line.strip())
    except _LITERAL_ERRORS:
        return None
    return obj if isinstance(obj, dict) else None


def iter_literal_lines(source: Source) -> Iterator[tuple[int, dict]]:
    """Yield ``(line_number, object)`` for a file of one Python literal dict a line (single quotes).

    ``ast.literal_eval`` reads only literals (strings, numbers, lists, dicts, ...):
    a line holding anything else, a call included, is an error, never run.
    """
    for number, line in iter_lines(source):
        try:
            obj = ast.literal_eval(line.strip())
        except _LITERAL_ERRORS as exc:
            reason = exc.msg if isinstance(exc, SyntaxError) else (str(exc) or type(exc).__name__)
            raise InputError(source.name, f"not a Python literal object ({reason})", line=number) from None
        if not isinstance(obj, dict):
            what = type(obj).__name__
            raise InputError(source.name, f"expected an object ({{...}}) on each line, got {what}", line=number)
        yield number, obj
