"""Command for the gnn stage: pretrain-gnn."""

from __future__ import annotations

import click

from .app import esr, resume_options, run_options


@esr.command("pretrain-gnn")
@run_options("gnn")
@resume_options
def pretrain_gnn(run, resume: bool | str) -> None:
    """Contrastive pretraining of the relation-aware GAT on the item graph; print the quality probe."""
    from esrgraph.artifacts import read_manifest
    from esrgraph.gnn.probe import describe
    from esrgraph.gnn.store import load_probe
    from esrgraph.pipeline import ensure

    out = ensure(run, "gnn", resume=resume)
    manifest = read_manifest(out) or {}
    click.echo(f"graph item embeddings of {run.cfg.dataset.name} -> {out}")
    if "epochs" in manifest:
        stop = "loss plateau" if manifest["stopped_early"] else "epoch limit"
        resumed = f", resumed after epoch {manifest['resumed_from']}" if manifest.get("resumed_from") else ""
        click.echo(
            f"{manifest['backend']} on {manifest['device']}: {manifest['epochs']} epochs ({stop}{resumed}), "
            f"{manifest['seconds_per_epoch']:.3f} s/epoch, best loss {manifest['best_loss']:.4f} "
            f"at epoch {manifest['best_epoch']}"
        )
    click.echo(describe(load_probe(out)))
