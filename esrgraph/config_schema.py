"""Turning plain mappings (from YAML and ``-o`` overrides) into typed dataclasses.

Every dataclass field may carry constraints in its ``metadata``:
``choices`` (allowed values, or a function returning them, e.g. a
registry's names), ``min`` / ``max`` (inclusive bounds),
``gt`` / ``lt`` (exclusive bounds); a ``Literal`` type lists the allowed
values itself. Errors name the full dotted key and say what is allowed, so a
typo in a YAML file or an override is found at once.

Two bounds hold for every field without being written down, because every
consumer needs them: an integer fits in 64 bits (torch and numpy take ints as
int64; a larger one passes here and fails deep inside training), and a float is
finite (no setting is a rate, weight or share that means anything at infinity;
a field whose metadata sets ``infinite=True`` accepts ±inf, never NaN).
"""

from __future__ import annotations

import dataclasses
import difflib
import math
import re
import types
import typing
from typing import Any, Literal, Union

from .errors import ConfigError

INT64 = (-(2**63), 2**63 - 1)  # what torch and numpy take an integer as


class _OutOfRange(ConfigError):
    """A number of the right type beyond its field's bounds (told apart from a value of the wrong type)."""


def build(cls: type, data: Any, prefix: str = "") -> Any:
    """Create dataclass ``cls`` from mapping ``data``, validating every key."""
    where = prefix.rstrip(".") or "config"
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError(f"{where}: expected a mapping of keys to values, got {_describe(data)}")
    hints = typing.get_type_hints(cls)
    known = {f.name: f for f in dataclasses.fields(cls)}
    for key in data:
        if key not in known:
            raise ConfigError(unknown_key_message(prefix + str(key), list(known)))
    kwargs = {}
    for name, f in known.items():
        if name in data:
            kwargs[name] = convert(hints[name], data[name], prefix + name, f.metadata)
    return cls(**kwargs)


def unknown_key_message(key: str, allowed: list[str]) -> str:
    leaf = key.rsplit(".", 1)[-1]
    close = difflib.get_close_matches(leaf, allowed, n=1)
    hint = f" (did you mean {close[0]!r}?)" if close else ""
    return f"{key}: unknown key{hint}; allowed here: {', '.join(sorted(allowed))}"


def convert(tp: Any, value: Any, key: str, meta: typing.Mapping = types.MappingProxyType({})) -> Any:
    """Check ``value`` against type ``tp`` and the field constraints in ``meta``."""
    origin = typing.get_origin(tp)
    if origin in (Union, types.UnionType):
        args = [a for a in typing.get_args(tp) if a is not type(None)]
        if value is None:
            return None
        if len(args) == 1:
            return convert(args[0], value, key, meta)
        out_of_range = None
        for arg in args:
            try:
                return convert(arg, value, key, meta)
            except _OutOfRange as exc:  # the right kind of value, refused for its size: that is the news
                out_of_range = exc
            except ConfigError:
                continue
        if out_of_range is not None:
            raise out_of_range
        raise ConfigError(f"{key}: expected {' or '.join(_allowed(a) for a in args)}, got {_describe(value)}")
    if value is None:
        raise ConfigError(f"{key}: a value is required (null is not allowed here)")
    if origin is Literal:
        choices = typing.get_args(tp)
        if value not in choices or isinstance(value, bool) != isinstance(choices[0], bool):
            raise ConfigError(f"{key}: {value!r} is not allowed; choose one of {', '.join(map(str, choices))}")
        return value
    if dataclasses.is_dataclass(tp):
        return build(tp, value, key + ".")
    if origin in (list, tuple):
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"{key}: expected a list, got {_describe(value)}")
        (item_type,) = typing.get_args(tp)[:1] or (Any,)
        return [convert(item_type, v, f"{key}[{i}]", meta) for i, v in enumerate(value)]
    if origin is dict:
        if not isinstance(value, dict):
            raise ConfigError(f"{key}: expected a mapping, got {_describe(value)}")
        _, value_type = typing.get_args(tp)
        return {str(k): convert(value_type, v, f"{key}.{k}", meta) for k, v in value.items()}
    return _check_scalar(tp, value, key, meta)


def _check_scalar(tp: Any, value: Any, key: str, meta: typing.Mapping) -> Any:
    if tp is Any:
        return value
    if tp is bool:
        if not isinstance(value, bool):
            raise ConfigError(f"{key}: expected true or false, got {_describe(value)}")
    elif tp is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(f"{key}: expected an integer, got {_describe(value)}")
        _check_int64(value, key)
    elif tp is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ConfigError(f"{key}: expected a number, got {_describe(value)}")
        value = _finite_float(value, key, meta)
    elif tp is str:
        if not isinstance(value, str):
            hint = (
                " (values are read as YAML: quote a template, e.g. -o 'key=\"{title}\"')"
                if isinstance(value, dict)
                else ""
            )
            raise ConfigError(f"{key}: expected a string, got {_describe(value)}{hint}")
    choices = meta.get("choices")
    if callable(choices):  # read from a registry when the value is checked
        choices = choices()
    if choices is not None and value not in choices:
        raise ConfigError(f"{key}: {value!r} is not allowed; choose one of {', '.join(map(str, choices))}")
    _check_bounds(value, key, meta)
    return value


def _check_int64(value: int, key: str) -> None:
    low, high = INT64
    if not low <= value <= high:
        raise _OutOfRange(f"{key}: {value} is out of range; integers must fit in 64 bits ({low} to {high})")


def _finite_float(value: int | float, key: str, meta: typing.Mapping) -> float:
    """``value`` as a float, refused where it is NaN, or infinite without the field's ``infinite`` flag."""
    try:
        number = float(value)
    except OverflowError:  # an integer beyond any float
        raise _OutOfRange(f"{key}: {value} is too large for a number") from None
    if math.isnan(number) or (math.isinf(number) and not meta.get("infinite")):
        raise _OutOfRange(f"{key}: {value} is not allowed; expected a finite number")
    return number


def _check_bounds(value: Any, key: str, meta: typing.Mapping) -> None:
    if not isinstance(value, (int, float)) or isinstance(value, bool):
        return
    bounds = [
        ("min", lambda v, b: v >= b, ">="),
        ("max", lambda v, b: v <= b, "<="),
        ("gt", lambda v, b: v > b, ">"),
        ("lt", lambda v, b: v < b, "<"),
    ]
    broken = [f"{sym} {meta[name]}" for name, ok, sym in bounds if name in meta and not ok(value, meta[name])]
    if broken:
        allowed = " and ".join(f"{sym} {meta[name]}" for name, _, sym in bounds if name in meta)
        raise _OutOfRange(f"{key}: {value} is out of range; expected a value {allowed}")


def to_dict(obj: Any) -> Any:
    """Plain-data copy of a config dataclass (for manifests, hashing and YAML)."""
    return dataclasses.asdict(obj) if dataclasses.is_dataclass(obj) else obj


def key_dict(obj: Any) -> Any:
    """Plain data for stage keys and run hashes (config dataclasses anywhere inside ``obj``).

    Settings at their default are left out, so a setting added later, left at its
    default, changes no key: earlier runs stay up to date.
    """
    if dataclasses.is_dataclass(obj):
        out = {}
        for f in dataclasses.fields(obj):
            value = getattr(obj, f.name)
            if _is_default(f, value):
                continue
            keyed = key_dict(value)
            if not (dataclasses.is_dataclass(value) and keyed == {}):
                out[f.name] = keyed
        return out
    if isinstance(obj, (list, tuple)):
        return type(obj)(key_dict(v) for v in obj)
    if isinstance(obj, dict):
        return {k: key_dict(v) for k, v in obj.items()}
    return obj


def plain(obj: Any) -> Any:
    """Plain data of every setting, defaults included (what a manifest records)."""
    if dataclasses.is_dataclass(obj):
        return dataclasses.asdict(obj)
    if isinstance(obj, (list, tuple)):
        return type(obj)(plain(v) for v in obj)
    if isinstance(obj, dict):
        return {k: plain(v) for k, v in obj.items()}
    return obj


def _is_default(f: dataclasses.Field, value: Any) -> bool:
    if f.default is not dataclasses.MISSING:
        default = f.default
    elif f.default_factory is not dataclasses.MISSING:
        default = f.default_factory()
    else:
        return False
    return type(value) is type(default) and value == default


def _describe(value: Any) -> str:
    if isinstance(value, dict):
        return "a mapping"
    if isinstance(value, (list, tuple)):
        return "a list"
    return f"{value!r} ({type(value).__name__})"


def _allowed(tp: Any) -> str:
    """How a type reads in an error: the values of a Literal, else the type's name."""
    if typing.get_origin(tp) is Literal:
        return " or ".join(repr(a) for a in typing.get_args(tp))
    return {"bool": "true or false", "int": "an integer", "float": "a number", "str": "a string"}.get(
        _name(tp), _name(tp)
    )


def _name(tp: Any) -> str:
    return getattr(tp, "__name__", str(tp))


def field(
    default: Any = dataclasses.MISSING, *, factory: Any = dataclasses.MISSING, help: str = "", **constraints: Any
):
    """A dataclass field with a help text and validation constraints."""
    meta = dict(constraints, help=help)
    if factory is not dataclasses.MISSING:
        return dataclasses.field(default_factory=factory, metadata=meta)
    return dataclasses.field(default=default, metadata=meta)


def check_folder_name(key: str, name: str | None) -> None:
    """A name that becomes a folder inside another: letters, digits, '.', '-' and '_', not starting with '.'."""
    if name is not None and not re.fullmatch(r"(?!\.)[\w.-]+", name):
        raise ConfigError(
            f"{key}: {name!r} is not allowed; use letters, digits, '.', '-' and '_' (not starting with '.')"
        )
