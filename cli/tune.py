"""The tune command: a search over a recommender's settings on validation."""

from __future__ import annotations

import click

from .app import config_argument, esr


@esr.command()
@config_argument()
@click.option("-o", "--override", "overrides", multiple=True, metavar="KEY=VALUE", help="Override a config key.")
@click.option("--trials", type=click.IntRange(1), default=None, help="Trials of the study (default: tune.trials).")
@click.option("--name", default=None, help="Study name (default: backbone-variant-<hash of space and config>).")
def tune(config, overrides, trials: int | None, name: str | None) -> None:
    """Search the settings of tune.space on validation NDCG@10; print the trials and write best.yaml.

    Each trial trains the configured recommender for one seed as train-seq does; trials
    below the median of earlier ones at the same epoch stop early. An interrupted study
    continues when run again with the same config.
    """
    from esrgraph.tune import run_study, table

    result = run_study(config, list(overrides), trials, name)
    click.echo(table(result))
    if result.best is not None:
        click.echo(f"best: trial {result.best['number']}: {result.best['settings']}")
        click.echo(f"best config -> {result.folder / 'best.yaml'}")
    click.echo(f"trials -> {result.folder / 'trials.json'}")
