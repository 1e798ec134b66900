"""Commands for the sequential recommender: train-seq, evaluate."""

from __future__ import annotations

import click

from .app import esr, run_options


@esr.command("train-seq")
@run_options("seq")
@click.option("--resume", is_flag=True, help="Continue from the last checkpoint of an interrupted run.")
def train_seq(run, resume: bool) -> None:
    """Train the sequential recommender (one model per seed), then evaluate it on the test split."""
    from esrgraph.eval.stage import evaluate, report
    from esrgraph.seq.distributed import finish
    from esrgraph.seq.stage import train_seq as train

    out = train(run, resume=resume)
    if not finish():
        return  # under torchrun, rank 0 evaluates and reports
    click.echo(f"models -> {out}")
    folder, metrics = evaluate(run)
    click.echo(report(metrics, run.cfg.eval.ks))
    click.echo(f"metrics -> {folder / 'metrics.json'}")


@esr.command()
@run_options("eval")
def evaluate(run) -> None:
    """Evaluate the trained models on the test split under both protocols."""
    from esrgraph.eval.stage import evaluate as run_evaluate, report

    folder, metrics = run_evaluate(run)
    click.echo(report(metrics, run.cfg.eval.ks))
    click.echo(f"metrics -> {folder / 'metrics.json'}")
