"""The ``esr`` click group and the options every stage command shares."""

from __future__ import annotations

import functools
import logging
import os
import sys

import click

from esrgraph import __version__


def _setup_logging(verbose: int, quiet: bool) -> None:
    """Third-party libraries log warnings unless -v; the toolkit's own progress
    lines (INFO) show unless --quiet."""
    level = logging.DEBUG if verbose > 1 else logging.INFO if verbose == 1 else logging.WARNING
    logging.basicConfig(level=level, format="%(levelname)s %(name)s: %(message)s", stream=sys.stderr)
    own = logging.WARNING if quiet else logging.DEBUG if verbose > 1 else logging.INFO
    logging.getLogger("esrgraph").setLevel(own)


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="esr")
@click.option("-v", "--verbose", count=True, help="More log output (-vv for debug).")
@click.option(
    "-q", "--quiet", is_flag=True, help="Only warnings and errors in the log; tables and results still print."
)
@click.option(
    "--threads",
    type=click.IntRange(1),
    default=None,
    help="Threads to compute with (default: OMP_NUM_THREADS where set, else the cores other jobs leave free, "
    "taken again every training epoch).",
)
def esr(verbose: int, quiet: bool, threads: int | None) -> None:
    """Graph-aware, LLM-enhanced sequential recommendation for long-tail users and items.

    Every command takes an optional CONFIG (a YAML file; the bundled
    amazon-scientific data when omitted) and any number of -o KEY=VALUE
    overrides, e.g. -o embed.batch_size=64.
    """
    if quiet and verbose:
        raise click.UsageError("--quiet and --verbose contradict each other; choose one")
    _setup_logging(verbose, quiet)
    from esrgraph.training import threads as thread_policy

    thread_policy.configure(threads)


class ConfigFile(click.ParamType):
    """CONFIG: a path, refused on one line (not click's usage screen) when it names a directory."""

    name = "config"

    def convert(self, value, param, ctx):
        if os.path.isdir(value):
            from esrgraph.errors import ConfigError

            raise ConfigError(f"{value}: is a directory, expected a YAML config file")
        return value


def config_argument():
    """The optional CONFIG argument every command takes."""
    return click.argument("config", required=False, type=ConfigFile())


def run_options(stage: str | None):
    """CONFIG argument, -o overrides and --force (recompute ``stage``), turned into a Run."""
    return functools.partial(_with_run, stage=stage)


def _with_run(func, stage: str | None):
    @config_argument()
    @click.option("-o", "--override", "overrides", multiple=True, metavar="KEY=VALUE", help="Override a config key.")
    @click.option("--force", is_flag=True, help="Recompute this command's stage even when it is up to date.")
    @functools.wraps(func)
    def wrapper(config, overrides, force, **kwargs):
        from esrgraph.config import load_config
        from esrgraph.runs import Run

        cfg = load_config(config, overrides)
        run = Run(cfg, force=frozenset([stage] if force and stage else []))
        run.remove_abandoned()
        return func(run, **kwargs)

    return wrapper


def resume_options(func):
    """--resume and --restart of a command that trains: by default a training continues a whole
    checkpoint made with the same settings (an interrupted command is simply run again), and starts
    over from anything else with a warning. --resume insists on continuing (an error naming the file
    where it cannot); --restart discards the checkpoints. Passes ``resume`` (True, False or "auto")."""

    @click.option("--resume", is_flag=True, help="Insist on continuing the last checkpoint: an error where none fits.")
    @click.option("--restart", is_flag=True, help="Discard the checkpoints of an interrupted run and start over.")
    @functools.wraps(func)
    def wrapper(*args, resume: bool, restart: bool, **kwargs):
        if resume and restart:
            raise click.UsageError("--resume and --restart contradict each other; choose one")
        return func(*args, resume=True if resume else False if restart else "auto", **kwargs)

    return wrapper
