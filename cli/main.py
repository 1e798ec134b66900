"""``esr``: parse arguments, call the library, print results.

User-facing problems (:class:`esrgraph.errors.EsrError`) are printed on one
line and exit with status 2, without a traceback.
"""

from __future__ import annotations

import functools
import logging
import sys

import click

from esrgraph import __version__
from esrgraph.errors import EsrError


def _setup_logging(verbose: int) -> None:
    level = logging.DEBUG if verbose > 1 else logging.INFO if verbose == 1 else logging.WARNING
    logging.basicConfig(level=level, format="%(levelname)s %(name)s: %(message)s", stream=sys.stderr)
    logging.getLogger("esrgraph").setLevel(logging.DEBUG if verbose > 1 else logging.INFO)


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="esr")
@click.option("-v", "--verbose", count=True, help="More log output (-vv for debug).")
def esr(verbose: int) -> None:
    """Graph-aware, LLM-enhanced sequential recommendation for long-tail users and items.

    Every command takes an optional CONFIG (a YAML file; the bundled
    amazon-scientific data when omitted) and any number of -o KEY=VALUE
    overrides, e.g. -o embed.batch_size=64.
    """
    _setup_logging(verbose)


def run_options(stage: str | None):
    """CONFIG argument, -o overrides and --force (recompute ``stage``), turned into a Run."""
    return functools.partial(_with_run, stage=stage)


def _with_run(func, stage: str | None):
    @click.argument("config", required=False, type=click.Path(dir_okay=False))
    @click.option("-o", "--override", "overrides", multiple=True, metavar="KEY=VALUE", help="Override a config key.")
    @click.option("--force", is_flag=True, help="Recompute this command's stage even when it is up to date.")
    @functools.wraps(func)
    def wrapper(config, overrides, force, **kwargs):
        from esrgraph.config import load_config
        from esrgraph.runs import Run

        cfg = load_config(config, overrides)
        return func(Run(cfg, force=frozenset([stage] if force and stage else [])), **kwargs)

    return wrapper


@esr.command()
@run_options("dataset")
def prepare(run) -> None:
    """Read, join and split the dataset; print its statistics."""
    from esrgraph.data.dataset import describe
    from esrgraph.data.stage import prepare as prepare_dataset

    ds = prepare_dataset(run)
    click.echo(f"dataset {ds.name} -> {run.stage_dir('dataset')}")
    click.echo(describe(ds.stats))


@esr.command()
@run_options("embed")
def embed(run) -> None:
    """Encode item and user texts; PCA item embeddings; similar users."""
    from esrgraph.data.dataset import describe
    from esrgraph.data.stage import prepare as prepare_dataset
    from esrgraph.text.stage import embed as run_embed

    ds = prepare_dataset(run)
    click.echo(f"dataset {ds.name}")
    click.echo(describe(ds.stats))
    out = run_embed(run)
    click.echo(f"embeddings -> {out}")


@esr.command("show-config")
@run_options(None)
def show_config(run) -> None:
    """Print the resolved configuration and its run directory."""
    from esrgraph.config import dump_yaml

    click.echo(f"# run directory: {run.dir}")
    click.echo(dump_yaml(run.cfg), nl=False)


def main(argv: list[str] | None = None) -> int:
    try:
        esr.main(args=argv, prog_name="esr", standalone_mode=False)
    except EsrError as exc:
        click.echo(f"esr: error: {exc}", err=True)
        return 2
    except click.exceptions.Abort:
        click.echo("esr: aborted", err=True)
        return 1
    except click.ClickException as exc:
        exc.show()
        return exc.exit_code
    except KeyboardInterrupt:
        click.echo("esr: interrupted; finished stages and checkpoints are kept, run the command again to resume", err=True)
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
