"""Commands for the sequential recommender: train-seq, evaluate."""

from __future__ import annotations

import click

from .app import esr, resume_options, run_options


@esr.command("train-seq")
@run_options("seq")
@resume_options
def train_seq(run, resume: bool | str) -> None:
    """Train the sequential recommender (one model per seed), then evaluate it on the test split."""
    from esrgraph.artifacts import read_json
    from esrgraph.eval.report import report
    from esrgraph.pipeline import ensure
    from esrgraph.training.distributed import finish

    out = ensure(run, "seq", resume=resume)
    if not finish():
        return  # under torchrun, rank 0 evaluates and reports
    click.echo(f"models -> {out}")
    folder = ensure(run, "eval")
    click.echo(report(read_json(folder / "metrics.json"), run.cfg.eval.ks))
    click.echo(f"metrics -> {folder / 'metrics.json'}")


@esr.command()
@run_options("eval")
def evaluate(run) -> None:
    """Evaluate the trained models on the test split under both protocols."""
    from esrgraph.artifacts import read_json
    from esrgraph.eval.report import report
    from esrgraph.pipeline import ensure

    folder = ensure(run, "eval")
    click.echo(report(read_json(folder / "metrics.json"), run.cfg.eval.ks))
    click.echo(f"metrics -> {folder / 'metrics.json'}")
