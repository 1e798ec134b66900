"""Resolving the stage graph: run what is missing or stale, in order, and nothing else.

The stages (:mod:`esrgraph.stages`) each declare what they read;
:func:`ensure` brings a stage's upstream stages up to date first, then runs
the stage itself unless its folder already holds an output with the same key
(its config section, its upstream stages' keys and, for the first stage, the
hashes of the input files). ``esr pipeline`` ensures every stage.
"""

from __future__ import annotations

import contextlib
import logging
from pathlib import Path
from typing import Any

from .artifacts import cached_sha256, read_json, stage_damage
from .data.files import display_name, resolve_path
from .graph.build import NoAttributeError
from .locks import exclusive
from .runs import Run
from .stages import Stage, StageRun, embed, evaluate, gnn, graph, prepare, seq
from .training.device import resolve_device
from .training.distributed import DistContext

log = logging.getLogger(__name__)

STAGES: dict[str, Stage] = {
    s.name: s for s in (prepare.STAGE, embed.STAGE, graph.STAGE, gnn.STAGE, seq.STAGE, evaluate.STAGE)
}
ORDER = tuple(STAGES)  # each stage after every stage it can read


def ensure(run: Run, name: str, resume: bool | str = "auto", callbacks: tuple = (), alone: bool = False) -> Path:
    """Bring stage ``name`` (and every stage it reads) up to date; returns its folder.

    ``resume`` applies to this stage's checkpoints (True: continue, and refuse
    checkpoints of other settings; False: start over; "auto": continue those
    that match); the stages it reads always continue what matches. One process
    at a time writes a stage: another that needs to write it meanwhile stops
    with an error naming the writer. ``callbacks`` run after each training
    epoch of this stage (:class:`~esrgraph.training.loop.EpochRecord`). ``alone``: this process
    runs the stage by itself even under torchrun (rank 0 brings the upstream stages up to date while
    the other processes wait for it).
    """
    stage = STAGES[name]
    dist = DistContext() if alone else _processes(run, stage)
    if dist.is_main:
        for upstream in stage.reads(run.cfg):
            ensure(run, upstream, alone=dist.active or alone)
    dist.barrier()  # the other processes wait until rank 0 has brought the upstream stages up to date
    key, section, upstream_keys, hashes = _key(run, stage)
    if _is_current(run, name, key, dist):
        return _up_to_date(run, name)
    with _writer(run, name, dist):
        if _is_current(run, name, key, dist):  # another process finished it between the check and the lock
            return _up_to_date(run, name)
        ctx = StageRun(run, {up: run.stage_dir(up) for up in stage.reads(run.cfg)}, key, resume, tuple(callbacks), dist)
        if dist.is_main:
            out = run.run_stage(name, section, upstream_keys, lambda tmp: stage.produce(ctx, tmp), hashes)
            if stage.checkpoints:
                _clear_checkpoints(out)
        else:
            stage.produce(ctx, None)
            out = run.stage_dir(name)
        dist.barrier()
    return out


def _is_current(run: Run, name: str, key: str, dist: DistContext) -> bool:
    """Whether the stage is up to date, as rank 0 sees it (only it checks: every process acts on one answer)."""
    current = run.is_current(name, key) if dist.is_main else False
    return dist.broadcast(float(current)) > 0 if dist.active else current


def _up_to_date(run: Run, name: str) -> Path:
    log.info("%s: up to date in %s", name, run.stage_dir(name))
    return run.stage_dir(name)


def _writer(run: Run, name: str, dist: DistContext) -> contextlib.AbstractContextManager:
    """The stage's write lock, held by rank 0 (the only process that writes)."""
    if not dist.is_main:
        return contextlib.nullcontext()
    folder = run.stage_dir(name)
    return exclusive(folder.with_name(f".{folder.name}.lock"), f"the {folder.name} stage of {run.dir}")


def current(run: Run, name: str) -> Path | None:
    """The stage's folder when it and every stage it reads are up to date, else None; runs nothing."""
    stage = STAGES[name]
    if any(current(run, up) is None for up in stage.reads(run.cfg)):
        return None
    key = _key(run, stage)[0]
    # no warning that a damaged stage "runs again": nothing runs here (damage() names what is damaged)
    return run.stage_dir(name) if run.is_current(name, key, warn=False) else None


def damage(run: Run, name: str) -> str | None:
    """'<file>: <what is wrong>' when stage ``name``, or a stage it reads, is not up to date because its
    output is damaged (not missing, nor made with other settings); None otherwise. Runs nothing."""
    stage = STAGES[name]
    for upstream in stage.reads(run.cfg):
        if found := damage(run, upstream):
            return found
    return stage_damage(run.stage_dir(name), _key(run, stage)[0])


def run_pipeline(run: Run) -> tuple[Path, dict]:
    """Every stage, the graph ones too whether or not the recommender reads them; returns the
    evaluation folder and its metrics. Data with no item attribute (titles only) have no graph: the
    graph stages are then skipped with a warning, unless the recommender reads the graph."""
    done = ("graph",) if _has_graph(run) else ("graph", "gnn")  # the graph is built (or found absent) first
    for name in ORDER:
        if name not in done and name != "eval":
            ensure(run, name)
    out = ensure(run, "eval")
    return out, read_json(out / "metrics.json")


def _has_graph(run: Run) -> bool:
    """Bring the graph stage up to date; False, with a warning, where the metadata give no item an
    attribute and the recommender does not read the graph (the error stands where it does)."""
    try:
        ensure(run, "graph")
    except NoAttributeError as err:
        if "gnn" in STAGES["seq"].reads(run.cfg):
            raise
        log.warning("build-graph, pretrain-gnn: skipped, the recommender does not read the graph: %s", err)
        return False
    return True


def _key(run: Run, stage: Stage) -> tuple[str, Any, dict[str, str], dict[str, str]]:
    section = stage.section(run.cfg)
    upstream = {up: run.stage_key(up) for up in stage.reads(run.cfg)}
    hashes = input_hashes(run) if stage.input_files else {}
    return run.key(stage.name, section, upstream, hashes), section, upstream, hashes


def input_hashes(run: Run) -> dict[str, str]:
    """sha256 of the dataset's input files, by their configured names (hashed once per process: an
    ablation's variants each have their own Run)."""
    if not run.input_hashes:
        paths = [run.cfg.dataset.interactions.path, run.cfg.dataset.metadata.path]
        run.input_hashes.update({display_name(resolve_path(p)): cached_sha256(resolve_path(p)) for p in paths if p})
    return run.input_hashes


def _processes(run: Run, stage: Stage) -> DistContext:
    """The torchrun process group for a distributed stage (one process otherwise)."""
    if not stage.distributed:
        return DistContext()
    return DistContext.from_env(resolve_device(stage.device(run.cfg)))


def _clear_checkpoints(stage_dir: Path) -> None:
    import shutil

    from .training.checkpoint import checkpoint_folder

    shutil.rmtree(checkpoint_folder(stage_dir), ignore_errors=True)
