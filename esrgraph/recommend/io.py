"""Files ``esr recommend`` reads (user ids, new histories, candidate items) and writes (JSON Lines or CSV).

Output is written to a temporary file beside the target and renamed into
place at the end, so an interrupted ``--all`` leaves no half-written file.
"""

from __future__ import annotations

import csv
import io
import json
import os
import tempfile
from collections.abc import Iterable, Iterator
from pathlib import Path

from ..data.files import Source, iter_lines
from ..errors import InputError

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


def write_rows(path: Path, rows: Iterable[tuple[str, list[dict]]]) -> int:
    """Write (user, ranked items) rows as JSON Lines (one user a line) or CSV (one item a line); returns the users."""
    if path.suffix not in FORMATS:
        raise InputError(str(path), f"unknown output format; name the file with one of {', '.join(FORMATS)}")
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    count = 0
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="") as handle:
            write = _jsonl if path.suffix == ".jsonl" else _csv_writer(handle)
            for user, items in rows:
                write(handle, user, items)
                count += 1
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
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
