"""Files ``esr recommend`` reads (user ids, new histories, candidate items) and writes (JSON Lines or CSV).

Output is written to a temporary file beside the target and renamed into
place at the end, so an interrupted ``--all`` leaves no half-written file.
The output's folder must exist unless ``create_dirs`` asks for it (the CLI's
``--create-dirs``, as curl names it): a mistyped folder is an error, not a new
tree of folders made without a word.
"""

from __future__ import annotations

import csv
import io
import json
import os
import tempfile
from collections.abc import Iterable, Iterator
from pathlib import Path

from ..artifacts import make_folders, remove_if_empty
from ..data.files import Source, iter_lines
from ..errors import EsrError, InputError

FORMATS = (".jsonl", ".csv")


def read_ids(path: Path) -> list[str]:
    """One id per line (blank lines skipped)."""
    ids = [line.strip() for _, line in iter_lines(Source(path)) if line.strip()]
    if not ids:
        raise InputError(str(path), "no ids in the file (one id per line expected)")
    return ids


def read_histories(path: Path) -> Iterator[tuple[str, list[str]]]:
    """``(user id, item ids)`` per line of a JSON Lines file ``{"id": ..., "items": [...]}``."""
    count = 0
    for number, line in iter_lines(Source(path)):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError as exc:
            raise InputError(str(path), f"malformed JSON ({exc.msg})", line=number) from None
        if not isinstance(record, dict) or "id" not in record or not isinstance(record.get("items"), list):
            raise InputError(str(path), 'expected {"id": ..., "items": [item ids, oldest first]}', line=number)
        count += 1
        yield str(record["id"]), [str(item) for item in record["items"]]
    if not count:
        raise InputError(str(path), 'no histories in the file (JSON Lines {"id": ..., "items": [...]} expected)')


def check_output(path: Path, create_dirs: bool = False) -> None:
    """Refuse an output whose format is unknown, or whose folder is missing (unless ``create_dirs``),
    before any work is done for it."""
    if path.suffix not in FORMATS:
        raise InputError(str(path), f"unknown output format; name the file with one of {', '.join(FORMATS)}")
    folder = path.parent
    if folder.exists() and not folder.is_dir():
        raise EsrError(f"{folder}: not a folder, so {path.name} cannot be written in it")
    if not folder.exists() and not create_dirs:
        raise EsrError(f"{folder}: no such folder for the output {path.name}; create it, or pass --create-dirs")


def write_rows(path: Path, rows: Iterable[tuple[str, list[dict]]], create_dirs: bool = False) -> int:
    """Write (user, ranked items) rows as JSON Lines (one user a line) or CSV (one item a line); returns the
    users. The folder must exist unless ``create_dirs``; folders created for a write that fails are removed."""
    check_output(path, create_dirs)
    created = make_folders(path.parent)
    count = 0
    try:
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    except BaseException:
        remove_if_empty(created)
        raise
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="") as handle:
            write = _jsonl if path.suffix == ".jsonl" else _csv_writer(handle)
            for user, items in rows:
                write(handle, user, items)
                count += 1
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        remove_if_empty(created)
        raise
    return count


def _jsonl(handle: io.TextIOBase, user: str, items: list[dict]) -> None:
    handle.write(json.dumps({"user": user, "items": items}, ensure_ascii=False) + "\n")


def _csv_writer(handle: io.TextIOBase):
    writer = csv.writer(handle)
    writer.writerow(["user", "rank", "item", "score", "title", "fallback"])

    def write(_, user: str, items: list[dict]) -> None:
        writer.writerows(
            [user, rank, r["item"], r["score"], r["title"] or "", r.get("fallback", "")]
            for rank, r in enumerate(items, 1)
        )

    return write
