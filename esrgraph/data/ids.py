"""What an id may be, in interactions and metadata alike: a non-empty, printable string or integer."""

from __future__ import annotations

import json
import re

from ..errors import InputError

# C0 and C1 control characters, NUL included: never part of a real id, and an id holding one prints
# as something else (or nothing) in every listing, file and message that names it
CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")


def parse_id(token: object, name: str, line: int | None = None, key: str | None = None, what: str = "id") -> str:
    """``token`` as an id's text (stripped), or an error naming the file ``name`` and the line or key."""
    if isinstance(token, bool) or not isinstance(token, (str, int)):
        raise InputError(name, f"{what} must be a string or integer, got {json.dumps(token)}", line=line, key=key)
    text = str(token).strip()
    if not text:
        raise InputError(name, f"empty {what}", line=line, key=key)
    check_printable(text, name, line, key, what)
    return text


def check_printable(text: str, name: str, line: int | None, key: str | None = None, what: str = "id") -> None:
    found = CONTROL.search(text)
    if found:
        char = found.group()
        raise InputError(
            name, f"{what} {text!r} holds a control character (U+{ord(char):04X}); ids must be printable", line, key
        )
