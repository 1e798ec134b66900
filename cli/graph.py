"""Command for the graph stage: build-graph."""

from __future__ import annotations

import click

from .app import esr, run_options


@esr.command("build-graph")
@run_options("graph")
def build_graph(run) -> None:
    """Build the item–attribute heterograph (brand, category, price); print its statistics."""
    from esrgraph.graph.io import load_sidecar
    from esrgraph.graph.stats import describe
    from esrgraph.pipeline import ensure

    out = ensure(run, "graph")
    meta = load_sidecar(out)
    click.echo(f"graph of {run.cfg.dataset.name} -> {out}")
    click.echo(describe(meta["stats"]))
