"""Command for recommending with a trained run: recommend."""

from __future__ import annotations

from pathlib import Path

import click

from .app import esr, run_options


@esr.command()
@run_options(None)
@click.option("--user", "users", multiple=True, metavar="ID", help="A known user's source id (repeatable).")
@click.option("--users-file", type=click.Path(dir_okay=False), help="Known users' source ids, one per line.")
@click.option("--all", "every_user", is_flag=True, help="Every user of the dataset (streamed; use -O).")
@click.option(
    "--history-file",
    type=click.Path(dir_okay=False),
    help='New users as JSON Lines {"id": ..., "items": [source item ids, oldest first]}.',
)
@click.option("-k", default=10, show_default=True, type=click.IntRange(1), help="Items per user.")
@click.option("--seed", type=int, help="Which trained model (default: the smallest trained seed).")
@click.option(
    "--exclude-seen/--include-seen", default=True, show_default=True, help="Leave out the items in the user's history."
)
@click.option("--candidates", type=click.Path(dir_okay=False), help="Rank only these item ids (one per line).")
@click.option(
    "--approximate",
    is_flag=True,
    help="Top-k through an approximate index (faiss-cpu; for catalogues of millions of items).",
)
@click.option(
    "-O",
    "--output",
    type=click.Path(dir_okay=False),
    help="Write here (.jsonl or .csv) instead of printing a readable list; its folder must exist.",
)
@click.option("--create-dirs", is_flag=True, help="Create the missing folders of the -O path.")
def recommend(
    run,
    users,
    users_file,
    every_user,
    history_file,
    k,
    seed,
    exclude_seen,
    candidates,
    approximate,
    output,
    create_dirs,
) -> None:
    """Recommend items with the model trained with this config: for known users, every user, or new histories.

    Rows carry source ids, scores and titles. The model must have been trained
    with the same config (esr train-seq CONFIG).
    """
    from esrgraph.api import load_recommender
    from esrgraph.recommend.io import check_output, read_histories, read_ids, write_rows

    chosen = [bool(users), bool(users_file), every_user, bool(history_file)]
    if sum(chosen) != 1:
        raise click.UsageError("give exactly one of --user, --users-file, --all or --history-file")
    if output:
        check_output(Path(output), create_dirs)  # before loading and ranking anything
    elif create_dirs:
        raise click.UsageError("--create-dirs creates the folders of the -O path; give -O")
    rec = load_recommender(run.cfg, seed=seed, approximate=approximate)
    allowed = read_ids(Path(candidates)) if candidates else None
    options = {"k": k, "exclude_seen": exclude_seen, "candidates": allowed}
    if every_user:
        rows = ((user, [r.as_dict() for r in top]) for user, top in rec.recommend_all(**options))
    elif history_file:
        rows = _history_rows(rec, read_histories(Path(history_file)), options)
    else:
        ids = list(users) if users else read_ids(Path(users_file))
        rows = zip(ids, rec.recommend_users(ids, **options))
    if output:
        count = write_rows(Path(output), rows, create_dirs)
        click.echo(f"{count:,} users' recommendations -> {output}")
    else:
        _print(rows)


def _history_rows(rec, histories, options):
    """Each history's recommendations; unknown ids and histories ranked by popularity are counted and
    reported once at the end (one warning per history would bury the output)."""
    unknown_total, examples, fallbacks = 0, [], []
    for user, items in histories:
        known, unknown = rec.known_items(items)
        unknown_total += unknown.count
        examples += unknown.examples[: 5 - len(examples)]
        if not len(known):
            fallbacks.append(user)
        yield user, rec.recommend(items, warn=False, **options)
    if unknown_total:
        click.echo(
            f"esr: warning: {unknown_total:,} history item ids are unknown to the model and were left out "
            f"(e.g. {', '.join(examples)})",
            err=True,
        )
    if fallbacks:
        click.echo(
            f"esr: warning: {len(fallbacks):,} histories hold no item the model knows (e.g. "
            f"{', '.join(fallbacks[:5])}): ranked by popularity, their rows marked fallback=popularity",
            err=True,
        )


def _print(rows) -> None:
    for user, top in rows:
        fallback = f" (no item the model knows: ranked by {top[0]['fallback']})" if top and "fallback" in top[0] else ""
        click.echo(f"user {user}:{fallback}")
        for rank, row in enumerate(top, 1):
            title = f"  {row['title']}" if row["title"] else ""
            click.echo(f"  {rank:>3}. {row['item']}  {row['score']:.4f}{title}")
