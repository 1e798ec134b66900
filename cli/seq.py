"""Commands for the sequential recommender: train-seq, evaluate, curves, compare."""

from __future__ import annotations

from pathlib import Path

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


@esr.command()
@run_options(None)
@click.option(
    "--against",
    type=click.Path(exists=True, file_okay=False, path_type=Path),
    help="Another run directory (runs/NAME) or stage (runs/NAME/seq-sasrec): each group's change over its "
    "curve at the same epoch and seed.",
)
@click.option("--seed", "seeds", type=int, multiple=True, help="Only these seeds (default: every one).")
@click.option("--every", type=click.IntRange(min=1), default=1, show_default=True, help="Print every N-th epoch.")
def curves(run, against: Path | None, seeds: tuple[int, ...], every: int) -> None:
    """Print the validation curves by user and item group, per epoch and seed, while training or after."""
    from esrgraph.seq.curves import curve_table, recommender_stages, stage_folder, stage_histories, summary

    baseline_stage = stage_folder(against) if against else None
    others = stage_histories(baseline_stage) if baseline_stage else {}
    for stage in recommender_stages(run.dir):
        mine = stage_histories(stage)
        missing = [seed for seed in seeds if seed not in mine]
        if missing:
            raise click.UsageError(f"{stage} has no seed {missing[0]}; it has {', '.join(map(str, mine))}")
        for seed in seeds or mine:
            history, finished = mine[seed]
            click.echo(f"{stage} · seed {seed} · validation NDCG@10 · {summary(history, finished)}")
            baseline = others.get(seed)
            if baseline is not None:
                click.echo(f"against {baseline_stage} · seed {seed} · {summary(*baseline)}")
            elif baseline_stage:
                click.echo(f"against {baseline_stage}: no seed {seed} there")
            click.echo(curve_table(history, baseline[0] if baseline else None, every) + "\n")


@esr.command()
@click.argument("paths", nargs=-1, required=True, metavar="MODEL... vs BASELINE...")
@click.option("--metric", default="NDCG@10", show_default=True, help="The metric compared (HR@K, NDCG@K, MRR).")
@click.option("--json", "json_path", type=click.Path(dir_okay=False, path_type=Path), help="Also write it as JSON.")
def compare(paths: tuple[str, ...], metric: str, json_path: Path | None) -> None:
    """Compare finished runs' test metrics by user and item group: the model's change over a baseline.

    Each side is one or more run folders (or their eval folders, or metrics.json files), pooled by
    seed, e.g. esr compare runs/mine-s1 runs/mine-s2 vs runs/sasrec-s1 runs/sasrec-s2.
    """
    from esrgraph.artifacts import write_json
    from esrgraph.eval.compare import comparison, comparison_table, pool

    if paths.count("vs") != 1 or paths[0] == "vs" or paths[-1] == "vs":
        raise click.UsageError("give MODEL... vs BASELINE...: one 'vs' between two non-empty lists of runs")
    split = paths.index("vs")
    result = comparison(pool([Path(p) for p in paths[:split]]), pool([Path(p) for p in paths[split + 1 :]]), metric)
    click.echo(comparison_table(result))
    if json_path is not None:
        write_json(json_path, result)
        click.echo(f"comparison -> {json_path}")
