"""User-facing errors.

An :class:`EsrError` describes a problem with the user's input or settings. The
``esr`` command prints it on one line (no traceback) and exits with status 2.
"""

from __future__ import annotations

import os


class EsrError(Exception):
    """A problem the user can fix: bad input data, a bad setting, a missing file."""


class ConfigError(EsrError):
    """A configuration key is unknown, of the wrong type, or out of range."""


class ArgumentError(EsrError, ValueError):
    """An argument of the Python API is of the wrong kind or out of range (what the CLI's options refuse)."""


class InputError(EsrError):
    """An input file cannot be read as the expected format."""

    def __init__(self, path: str | os.PathLike, expected: str, line: int | None = None, key: str | None = None):
        where = str(path)
        if line is not None:
            where += f", line {line}"
        if key is not None:
            where += f", key {key!r}"
        super().__init__(f"{where}: {expected}")
        self.path = str(path)
        self.line = line
        self.key = key
