"""Commands that run several stages: pipeline, ablate."""

from __future__ import annotations

import click

from .app import config_argument, esr, run_options


@esr.command()
@run_options(None)
def pipeline(run) -> None:
    """Run embed, build-graph, pretrain-gnn, train-seq and evaluate in one run directory.

    Stages whose outputs are up to date are skipped; an interrupted stage continues. Where the
    metadata give no item a brand, category or price (titles only), build-graph and pretrain-gnn are
    skipped with a warning, unless the model reads the graph (seq.fusion).
    """
    from esrgraph.eval.report import report
    from esrgraph.pipeline import run_pipeline

    folder, metrics = run_pipeline(run)
    click.echo(f"run directory: {run.dir}")
    click.echo(report(metrics, run.cfg.eval.ks))
    click.echo(f"metrics -> {folder / 'metrics.json'}")


@esr.command()
@config_argument()
@click.option("-o", "--override", "overrides", multiple=True, metavar="KEY=VALUE", help="Override a config key.")
@click.option("--seeds", default=3, show_default=True, type=click.IntRange(1), help="Seeds per variant.")
@click.option("--first-seed", default=1, show_default=True, type=int)
@click.option(
    "--only", multiple=True, metavar="VARIANT", help="Run only this variant (repeatable), e.g. llmesr+graph-view."
)
def ablate(config, overrides, seeds: int, first_seed: int, only) -> None:
    """Train and evaluate every variant for several seeds; write a table and a plot of tail gains.

    The table also holds the variants finished by earlier calls on the same
    run directory, so --only runs add up. An unknown --only name lists the
    variants.
    """
    from esrgraph.ablation import markdown, run_ablation
    from esrgraph.config import load_config

    folder, results = run_ablation(config, list(overrides), list(range(first_seed, first_seed + seeds)), list(only))
    click.echo(markdown(results, load_config(config, list(overrides)).eval.ks))
    click.echo(f"ablation -> {folder}")
