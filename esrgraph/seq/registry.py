"""Registries of the recommender's parts: backbones, objectives and variants, each by name.

A part registers itself where it is defined, with the capabilities the rest
of the code asks about (a backbone: which training scheme it needs, whether
it owns a mask token, the settings it takes). Nothing outside a registry
compares a part's name: code asks the registered spec. Config validation
reads the names from here, so a new part is a setting as soon as its module
registers it.

The modules that register are imported on first use (:func:`Registry.load`),
so reading a name never depends on import order.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import Generic, TypeVar

from ..errors import ConfigError

T = TypeVar("T")


class Registry(Generic[T]):
    """Named specs of one kind of part. ``modules``: the modules whose import registers them."""

    def __init__(self, kind: str, modules: tuple[str, ...]):
        self.kind = kind
        self.modules = modules
        self._specs: dict[str, T] = {}
        self._loaded = False

    def register(self, name: str, spec: T) -> T:
        if name in self._specs:
            raise ValueError(f"a {self.kind} named {name!r} is registered twice")
        self._specs[name] = spec
        return spec

    def load(self) -> None:
        if not self._loaded:
            self._loaded = True
            for module in self.modules:
                importlib.import_module(module)

    def names(self) -> tuple[str, ...]:
        self.load()
        return tuple(self._specs)

    def get(self, name: str, key: str = "") -> T:
        """The spec registered as ``name``; a config error naming ``key`` and the choices otherwise."""
        self.load()
        if name not in self._specs:
            where = f"{key}: " if key else ""
            raise ConfigError(f"{where}{name!r} is not a known {self.kind}; choose one of {', '.join(self._specs)}")
        return self._specs[name]

    def choices(self) -> Callable[[], tuple[str, ...]]:
        """The names as a config field's ``choices`` (read when a config is checked)."""
        return self.names


BACKBONES: Registry = Registry("backbone", ("esrgraph.seq.backbones",))
OBJECTIVES: Registry = Registry("objective", ("esrgraph.seq.objectives",))
VARIANTS: Registry = Registry("variant", ("esrgraph.seq.variants",))
