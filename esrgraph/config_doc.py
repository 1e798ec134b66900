"""The configuration reference, generated from the config dataclasses' types, defaults and help texts.

``esr show-config --doc`` prints it; ``docs/configuration.md`` holds a copy
that a test keeps equal to what this module generates.
"""

from __future__ import annotations

import dataclasses
import typing
from typing import Any, Literal

from .config import Config

HEADER = """# Configuration reference

Every setting of `esr`, as `esr show-config --doc` prints it (generated from
the config dataclasses; do not edit by hand). Set any of them in a YAML file
or with `-o key=value`; `esr show-config CONFIG` prints a resolved config.
"""


def reference() -> str:
    """Markdown: one table per config section, one row per setting."""
    parts = [HEADER]
    for section, cls in _sections(Config, ""):
        doc = (
            (cls.__doc__ or "").strip().splitlines()[0]
            if cls.__doc__ and not cls.__doc__.startswith(cls.__name__ + "(")
            else ""
        )
        parts.append(f"## `{section}`\n")
        if doc:
            parts.append(doc + "\n")
        parts.append("| key | type | default | meaning |\n|---|---|---|---|")
        hints = typing.get_type_hints(cls)
        for f in dataclasses.fields(cls):
            if dataclasses.is_dataclass(hints[f.name]):
                continue
            parts.append(
                f"| `{section}.{f.name}` | {_type(hints[f.name], f.metadata)} | {_default(f)} | "
                f"{_escape(f.metadata.get('help', ''))} |"
            )
        parts.append("")
    return "\n".join(parts).rstrip() + "\n"


def _sections(cls: type, prefix: str):
    """(dotted name, dataclass) of every section that holds settings, depth first."""
    hints = typing.get_type_hints(cls)
    own = [f for f in dataclasses.fields(cls) if not dataclasses.is_dataclass(hints[f.name])]
    if own and prefix:
        yield prefix, cls
    for f in dataclasses.fields(cls):
        if dataclasses.is_dataclass(hints[f.name]):
            yield from _sections(hints[f.name], f"{prefix}.{f.name}" if prefix else f.name)


def _type(tp: Any, meta: typing.Mapping) -> str:
    origin = typing.get_origin(tp)
    args = [a for a in typing.get_args(tp) if a is not type(None)]
    optional = len(args) < len(typing.get_args(tp))
    if origin is Literal:
        text = " \\| ".join(f"`{a}`" for a in typing.get_args(tp))
    elif origin is dict:
        text = f"mapping of str to {_type(args[1], {})}"
    elif origin in (list, tuple):
        text = f"list of {_type(args[0], {})}" if args else "list"
    elif args and origin is not None and not optional:
        text = " or ".join(_type(a, {}) for a in args)
    elif optional:
        text = _type(args[0], {})
    else:
        text = getattr(tp, "__name__", str(tp))
    choices = meta.get("choices")
    if callable(choices):
        choices = choices()
    if choices:
        listed = " \\| ".join(f"`{c}`" for c in choices)
        text = listed if text == "str" else f"{text}: {listed}"
    bounds = [f"{sym} {meta[k]}" for k, sym in (("min", "≥"), ("max", "≤"), ("gt", ">"), ("lt", "<")) if k in meta]
    if bounds:
        text += " (" + ", ".join(bounds) + ")"
    return text + (" or null" if optional else "")


def _default(f: dataclasses.Field) -> str:
    value = f.default_factory() if f.default_factory is not dataclasses.MISSING else f.default
    if isinstance(value, dict):  # a mapping of setting sections: only what each sets
        value = {k: _set_fields(v) for k, v in value.items()}
    return f"`{value!r}`" if value is not None else "null"


def _set_fields(section) -> dict:
    return {name: x for name, x in dataclasses.asdict(section).items() if x not in (None, False)}


def _escape(text: str) -> str:
    return text.replace("|", "\\|")
