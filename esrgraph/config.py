"""Typed configuration: dataclasses loaded from YAML, overridable with ``-o key=value``.

A YAML file may name other files under ``extends:`` (paths relative to itself);
they are merged first, the file's own keys last. Relative data paths in a YAML
file are relative to that file; in an override, to the working directory.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import re
import typing
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from . import config_schema as schema
from .config_schema import field
from .data.config import (  # noqa: F401  (re-exported: the dataset section is read from here too)
    BUNDLED_PREFIX,
    DatasetConfig,
    GroupsConfig,
    InteractionsConfig,
    JoinConfig,
    MetadataConfig,
    MetadataFields,
)
from .data.files import why_missing
from .errors import ConfigError
from .eval.config import EvalConfig
from .gnn.config import GnnConfig
from .graph.config import GraphConfig
from .seq.config import SeqConfig, TrainConfig
from .text.config import EmbedConfig

# numpy's global and legacy generators, which the graph pretraining and the tuner's sampler seed, take
# seeds below 2^32 (torch's and numpy's newer generators take any 64-bit one)
NUMPY_SEED_MAX = 2**32 - 1


@dataclass
class RunConfig:
    root: str = field("runs", help="folder that holds run directories")
    name: str | None = field(None, help="run directory name; default <dataset>-<config hash>")
    seed: int = field(42, min=0, max=NUMPY_SEED_MAX, help="seed of the graph pretraining (numpy's global seed)")

    def check(self, cfg: Config) -> None:
        schema.check_folder_name("run.name", self.name)


@dataclass
class TuneRange:
    """One searched setting: a range (``low``, ``high``, ``log``: sampled on a log scale) or ``choices``."""

    low: int | float | None = field(None, help="smallest value (integers when low and high are)")
    high: int | float | None = field(None, help="largest value")
    log: bool = field(False, help="sample on a log scale")
    choices: list[Any] | None = field(None, help="the values to choose from, instead of a range")


def default_space() -> dict[str, TuneRange]:
    return {
        "train.lr": TuneRange(1e-4, 3e-3, log=True),
        "seq.dropout": TuneRange(0.1, 0.7),
        "train.weight_decay": TuneRange(choices=[0.0, 1e-6, 1e-5, 1e-4]),
    }


@dataclass
class TuneConfig:
    """esr tune: a search over settings on validation NDCG@10, one seed per trial."""

    trials: int = field(20, min=1, help="trials of a study (the budget every compared model gets)")
    seed: int = field(0, min=0, max=NUMPY_SEED_MAX, help="seed of the sampler (a numpy seed)")
    train_seed: int = field(1, min=0, help="the seed every trial trains with")
    startup_trials: int = field(5, min=1, help="random trials before the sampler models the results")
    prune_after: int = field(
        8, min=0, help="epochs before a trial below the median of earlier trials at that epoch may be stopped"
    )
    space: dict[str, TuneRange] = field(
        factory=default_space, help="setting -> range or choices, e.g. train.lr: {low: 1.0e-4, high: 3.0e-3, log: true}"
    )

    def check(self, cfg: Config) -> None:
        for key, spec in self.space.items():
            ranged = spec.low is not None and spec.high is not None
            if ranged == (spec.choices is not None):
                raise ConfigError(f"tune.space.{key}: give either low and high, or choices")
            if ranged and not spec.low < spec.high:
                raise ConfigError(f"tune.space.{key}: low ({spec.low}) must be below high ({spec.high})")
            if spec.log and ranged and spec.low <= 0:
                raise ConfigError(f"tune.space.{key}: a log scale needs low > 0")


@dataclass
class Config:
    dataset: DatasetConfig = field(factory=DatasetConfig)
    embed: EmbedConfig = field(factory=EmbedConfig)
    graph: GraphConfig = field(factory=GraphConfig)
    gnn: GnnConfig = field(factory=GnnConfig)
    seq: SeqConfig = field(factory=SeqConfig)
    train: TrainConfig = field(factory=TrainConfig)
    eval: EvalConfig = field(factory=EvalConfig)
    run: RunConfig = field(factory=RunConfig)
    tune: TuneConfig = field(factory=TuneConfig)

    def to_dict(self) -> dict:
        return schema.to_dict(self)

    def digest(self, *sections: str) -> str:
        """Stable hash of the named sections (all but ``run`` and ``tune`` when none are named)."""
        data = schema.key_dict(self)
        keys = sections or tuple(k for k in data if k not in ("run", "tune"))
        blob = json.dumps({k: data[k] for k in keys}, sort_keys=True)
        return hashlib.sha256(blob.encode()).hexdigest()


# Keys that hold file paths, resolved relative to the YAML file that sets them.
PATH_KEYS = (("dataset", "interactions", "path"), ("dataset", "metadata", "path"))


def load_config(path: str | os.PathLike | None = None, overrides: list[str] | tuple[str, ...] = ()) -> Config:
    """Load a YAML config (or the defaults when ``path`` is None) and apply overrides."""
    raw = _read_yaml_tree(Path(path), set()) if path is not None else {}
    for text in overrides:
        _apply_override(raw, text)
    cfg = schema.build(Config, raw)
    _validate(cfg)
    return cfg


class _Loader(yaml.SafeLoader):
    """Safe YAML loader that also reads ``5e-4`` (no dot) as a float and refuses a key
    given twice in one mapping (plain YAML keeps the last silently)."""

    def construct_mapping(self, node, deep=False):
        first: dict = {}
        for key_node, _ in node.value:
            key = key_node.value if isinstance(key_node, yaml.ScalarNode) else None
            if key is not None and key in first:
                raise yaml.constructor.ConstructorError(
                    None,
                    None,
                    f"key {key!r} appears twice in one mapping (first on line {first[key]})",
                    key_node.start_mark,
                )
            first.setdefault(key, key_node.start_mark.line + 1)
        return super().construct_mapping(node, deep)


_Loader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(r"^[-+]?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?$|^[-+]?\.(inf|Inf|INF)$|^\.(nan|NaN|NAN)$"),
    list("-+0123456789."),
)


def parse_yaml(text: str, source: str) -> Any:
    try:
        return yaml.load(text, Loader=_Loader)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f", line {mark.line + 1}" if mark is not None else ""
        raise ConfigError(f"{source}{where}: not valid YAML ({getattr(exc, 'problem', exc)})") from None


def _read_yaml_tree(path: Path, seen: set[Path]) -> dict:
    if not path.is_file():  # checked before resolving: a link loop cannot be resolved
        missing = why_missing(path) if not path.exists() else "not a file"
        raise ConfigError(f"{path}: config file not found" if missing == "file not found" else f"{path}: {missing}")
    path = path.resolve()
    if path in seen:
        raise ConfigError(f"{path}: 'extends' forms a cycle")
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{path}: not UTF-8 text ({exc.reason} at byte {exc.start})") from None
    data = parse_yaml(text, str(path)) or {}
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: expected a mapping of sections at the top level")
    parents = data.pop("extends", None) or []
    if isinstance(parents, str):
        parents = [parents]
    merged: dict = {}
    for parent in parents:
        _deep_merge(merged, _read_yaml_tree(path.parent / parent, seen | {path}))
    _resolve_paths(data, path.parent)
    _deep_merge(merged, data)
    return merged


def _resolve_paths(data: dict, base: Path) -> None:
    for keys in PATH_KEYS:
        node = data
        for key in keys[:-1]:
            node = node.get(key) if isinstance(node, dict) else None
        if isinstance(node, dict) and isinstance(node.get(keys[-1]), str):
            node[keys[-1]] = resolve_relative(node[keys[-1]], base)


def resolve_relative(value: str, base: Path) -> str:
    if value.startswith(BUNDLED_PREFIX) or os.path.isabs(value):
        return value
    try:
        return str((base / value).resolve())
    except (RuntimeError, OSError):  # a link loop: kept as written, and named when the file is opened
        return os.path.abspath(base / value)


def _deep_merge(into: dict, new: dict) -> None:
    for key, value in new.items():
        if isinstance(value, dict) and isinstance(into.get(key), dict):
            _deep_merge(into[key], value)
        else:
            into[key] = value


def _apply_override(raw: dict, text: str) -> None:
    if "=" not in text:
        raise ConfigError(f"override {text!r}: expected KEY=VALUE, e.g. embed.batch_size=64")
    key, _, value_text = text.partition("=")
    parts = key.strip().split(".")
    cls, node = Config, raw
    for depth, part in enumerate(parts):
        dotted = ".".join(parts[: depth + 1])
        known = {f.name for f in dataclasses.fields(cls)}
        if part not in known:
            raise ConfigError(schema.unknown_key_message(dotted, list(known)))
        field_type = _dataclass_type(cls, part)
        if depth == len(parts) - 1:
            value = _override_value(value_text, text)
            if tuple(parts) in PATH_KEYS and isinstance(value, str):
                value = resolve_relative(value, Path.cwd())
            node[part] = value
        else:
            if field_type is None:
                raise ConfigError(f"{dotted}: is a value, not a section; cannot set {key}")
            node = node.setdefault(part, {})
            if not isinstance(node, dict):
                raise ConfigError(f"{dotted}: expected a mapping, cannot set {key}")
            cls = field_type


def _override_value(value_text: str, text: str) -> Any:
    """The override's value as YAML reads it, except where YAML would read a lone character
    as syntax: '|' and '>' start block text (read as ''), '#' a comment (read as null)."""
    if value_text.strip()[:1] in ("|", ">", "#"):
        return value_text.strip()
    return parse_yaml(value_text, f"override {text!r}")


def _dataclass_type(cls: type, name: str) -> type | None:
    tp = typing.get_type_hints(cls)[name]
    return tp if dataclasses.is_dataclass(tp) else None


def _validate(cfg: Config) -> None:
    """Each section checks itself (settings that involve more than one key, defaults that follow other keys)."""
    for f in dataclasses.fields(cfg):
        section = getattr(cfg, f.name)
        if hasattr(section, "check"):
            section.check(cfg)


def dump_yaml(cfg: Config) -> str:
    return yaml.safe_dump(cfg.to_dict(), sort_keys=False)
