"""Command for the graph stage: build-graph."""

from __future__ import annotations

import click

from .app import esr, run_options


@esr.command("build-graph")
@run_options("graph")
def build_graph(run) -> None:
    """Build the item–attribute heterograph (brand, category, price); print its statistics."""
    from esrgraph.graph.stage import build_graph as run_build_graph
    from esrgraph.graph.stage import load_sidecar
    from esrgraph.graph.stats import describe

    out = run_build_graph(run)
    meta = load_sidecar(out)
    click.echo(f"graph of {run.cfg.dataset.name} -> {out}")
    click.echo(describe(meta["stats"]))
