"""Run directories: one per dataset and configuration, one sub-folder per stage.

``<run.root>/<dataset>-<config hash>/`` holds ``config.yaml`` (the resolved
config), ``manifest.json`` (config, input hashes, versions) and one folder per
stage, each with its own manifest. A stage is keyed by its own config section,
its input files and the keys of the stages it reads, and is skipped when its
folder already holds a complete output with that key whose files still have
the sizes and hashes recorded when they were written. Sections may hold config
dataclasses; they are keyed through :func:`key_dict`, which leaves out settings
at their default, so a setting added later and left at its default keeps
earlier runs up to date.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .artifacts import (
    atomic_write_bytes,
    is_up_to_date,
    package_versions,
    read_manifest,
    remove_abandoned_temporaries,
    sha256_json,
    stage_output,
    write_json,
    write_manifest,
)
from .config import Config, dump_yaml
from .config_schema import key_dict, plain

log = logging.getLogger(__name__)
# Stages that differ between the variants of an ablation; the rest are shared.
MODEL_STAGES = ("seq", "eval")


@dataclass
class Run:
    cfg: Config
    force: frozenset[str] = frozenset()  # stages to recompute even when up to date
    variant: str | None = None  # names the model stages apart when several models share one run directory
    input_hashes: dict[str, str] = field(default_factory=dict, repr=False)  # the dataset's input files, once hashed

    @property
    def dir(self) -> Path:
        name = self.cfg.run.name or f"{self.cfg.dataset.name}-{self.cfg.digest()[:10]}"
        return Path(self.cfg.run.root) / name

    @property
    def cache_dir(self) -> Path:
        return Path(self.cfg.run.root) / ".cache"

    def stage_dir(self, stage: str) -> Path:
        if self.variant and stage in MODEL_STAGES:
            return self.dir / f"{stage}-{self.variant}"
        return self.dir / stage

    def remove_abandoned(self) -> None:
        """Remove the temporary files and folders a killed process left in the run directory (every
        command does this first, so they do not wait for the same stage to run again); a running
        process's are left alone."""
        removed = remove_abandoned_temporaries(self.dir)
        if removed:
            names = ", ".join(str(p.relative_to(self.dir)) for p in removed[:3])
            log.info("removed %d temporary file(s) left by a process that no longer runs: %s", len(removed), names)

    def stage_key(self, stage: str) -> str:
        manifest = read_manifest(self.stage_dir(stage))
        return manifest["key"] if manifest else ""

    def write_run_manifest(self) -> None:
        self.dir.mkdir(parents=True, exist_ok=True)
        atomic_write_bytes(self.dir / "config.yaml", dump_yaml(self.cfg).encode())
        write_json(
            self.dir / "manifest.json",
            {
                "config": self.cfg.to_dict(),
                "config_hash": self.cfg.digest(),
                "inputs": self.input_hashes,
                "versions": package_versions(),
            },
        )

    @staticmethod
    def key(stage: str, section: Any, upstream: dict[str, str], inputs: dict[str, str] | None = None) -> str:
        return sha256_json({"stage": stage, "config": key_dict(section), "upstream": upstream, "inputs": inputs or {}})

    def is_current(self, stage: str, key: str, warn: bool = True) -> bool:
        """The stage folder holds a complete, undamaged output with this key, and no --force asks to redo it
        (a damaged output is named in a warning unless ``warn`` is false)."""
        return stage not in self.force and is_up_to_date(self.stage_dir(stage), key, warn)

    def run_stage(
        self,
        stage: str,
        section: Any,
        upstream: dict[str, str],
        produce: Callable[[Path], dict | None],
        inputs: dict[str, str] | None = None,
    ) -> Path:
        """Run ``produce(tmp_dir)`` unless the stage is up to date; returns the stage folder.

        ``upstream`` maps stage names to their keys; ``produce`` may return extra
        manifest entries (e.g. statistics).
        """
        inputs = inputs if inputs is not None else {}
        key = self.key(stage, section, upstream, inputs)
        out = self.stage_dir(stage)
        if self.is_current(stage, key):
            log.info("%s: up to date in %s", stage, out)
            return out
        with stage_output(out) as tmp:
            extra = produce(tmp) or {}
            write_manifest(
                tmp, stage, key, plain(section), {**inputs, **{f"stage:{k}": v for k, v in upstream.items()}}, extra
            )
        self.write_run_manifest()  # after the stage: a failed run leaves the manifest describing what is there
        log.info("%s: wrote %s", stage, out)
        return out
