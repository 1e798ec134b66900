"""Commands for the dataset and text stages: prepare, embed, show-config."""

from __future__ import annotations

import click

from .app import esr, run_options


def show_dataset(run) -> None:
    from esrgraph.artifacts import read_json
    from esrgraph.data.report import describe
    from esrgraph.pipeline import ensure

    out = ensure(run, "dataset")
    click.echo(f"dataset {run.cfg.dataset.name} -> {out}")
    click.echo(describe(read_json(out / "stats.json")))


@esr.command()
@run_options("dataset")
def prepare(run) -> None:
    """Read, join and split the dataset; print its statistics."""
    show_dataset(run)


@esr.command()
@run_options("embed")
def embed(run) -> None:
    """Encode item and user texts; PCA item embeddings; similar users.

    Under torchrun, every process encodes a share of the texts and rank 0 writes.
    """
    from esrgraph.pipeline import ensure
    from esrgraph.training.distributed import finish

    out = ensure(run, "embed")
    if not finish():
        return  # under torchrun, rank 0 reports
    show_dataset(run)
    click.echo(f"embeddings -> {out}")


@esr.command("show-config")
@run_options(None)
@click.option("--doc", is_flag=True, help="Print the reference of every setting (type, default, meaning) instead.")
def show_config(run, doc: bool) -> None:
    """Print the resolved configuration and its run directory."""
    from esrgraph.config import dump_yaml

    if doc:
        from esrgraph.config_doc import reference

        click.echo(reference(), nl=False)
        return
    click.echo(f"# run directory: {run.dir}")
    click.echo(dump_yaml(run.cfg), nl=False)
