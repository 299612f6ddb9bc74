"""``dferbench leaderboard``, ``site`` and ``compare``: reading result files, never running a model."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from dferbench.cli.group import cli


@cli.command(name="leaderboard")
@click.option("--results", default="runs", show_default=True, type=click.Path(file_okay=False),
              help="Directory of result files.")
@click.option("--out", default="runs/leaderboards", show_default=True, type=click.Path(file_okay=False),
              help="Where <dataset>.md and the confusion-matrix PNGs go.")
@click.option("--dataset", "datasets", multiple=True,
              help="Only these datasets (default: every dataset with results or with reported numbers).")
@click.option("--check", is_flag=True, help="Exit 1 if a committed leaderboard differs from the results.")
@click.option("--skip-invalid", is_flag=True,
              help="Build without invalid result files (each is named, and the pages list them) instead of stopping.")
def leaderboard_cmd(results, out, datasets, check, skip_invalid) -> None:
    """Build Markdown leaderboards from result files only (no model is run).

    \b
    One page per dataset with results and per dataset with reported (published) numbers:
    UAR/WAR with 95% intervals, a paired test against the best row, rank intervals,
    per-class recall, confusion matrices, and the reported rows with their sources.
    """
    from dferbench import api

    paths = api.leaderboard(results, out, list(datasets) or None, check=check, skip_invalid=skip_invalid,
                            echo=lambda m: click.echo(m, err=True))
    if check:
        if paths:
            click.echo("stale leaderboards (regenerate with `dferbench leaderboard`): " + ", ".join(paths), err=True)
            sys.exit(1)
        click.echo("leaderboards are up to date")
        return
    for p in paths:
        click.echo(f"wrote {p}")


@cli.command(name="site")
@click.option("--results", default="runs", show_default=True, type=click.Path(file_okay=False),
              help="Directory of result files.")
@click.option("--out", default="runs/site", show_default=True, type=click.Path(file_okay=False),
              help="Folder for the site: a new or empty one, or an earlier site (replaced).")
@click.option("--dataset", "datasets", multiple=True, help="Only these datasets (default: all with results).")
@click.option("--check", is_flag=True, help="Write nothing; exit 1 if --out differs from a fresh build.")
@click.option("--serve", is_flag=True, help="Then serve it on http://127.0.0.1:PORT/ until Ctrl-C.")
@click.option("--port", default=8000, show_default=True, help="Port for --serve (bound to 127.0.0.1 only).")
def site_cmd(results, out, datasets, check, serve, port) -> None:
    """Build a static leaderboard site from result files only (works from file://).

    \b
    One table per dataset, sortable and filterable; a page per row with its folds, per-class
    recall, confusion matrix, training curves, config and provenance.
    Example: dferbench site --results results --out build/site && open build/site/index.html
    """
    from dferbench.report.site import site

    paths = site(results, out, list(datasets) or None, check=check, serve=serve, port=port)
    if check:
        if paths:
            click.echo(f"stale site, {len(paths)} files differ (rebuild with `dferbench site`): "
                       + ", ".join(paths[:10]) + (" ..." if len(paths) > 10 else ""), err=True)
            sys.exit(1)
        click.echo("site is up to date")
    elif not serve:
        click.echo(f"wrote {len(paths)} files; open {Path(out) / 'index.html'}")


@cli.command(name="compare")
@click.argument("a")
@click.argument("b", required=False)
@click.option("--dataset", "-d", required=True, help="Dataset whose rows are compared.")
@click.option("--results", default="runs", show_default=True, type=click.Path(file_okay=False),
              help="Directory of result files.")
@click.option("--metric", type=click.Choice(["uar", "war"]), default="uar", show_default=True)
@click.option("--against-all", is_flag=True, help="Compare A with every other row, Holm-corrected.")
@click.option("--resamples", default=10000, show_default=True, help="Bootstrap resamples and permutations.")
@click.option("--seed", default=0, show_default=True, help="Seed of the resampling.")
def compare_cmd(a, b, dataset, results, metric, against_all, resamples, seed) -> None:
    """Is row A better than row B? Paired on the same test clips, fold by fold.

    \b
    Rows are leaderboard run names (`dferclip`, `dferclip[text=class-names]`, and
    `NAME@best_on_test` for the paper's selection policy). Prints both scores with 95%
    intervals (stratified bootstrap over test clips), the difference with its interval, a
    paired permutation p-value and a per-fold table.
    Examples:
      dferbench compare dferclip finetune -d synthetic --results results
      dferbench compare dferclip --against-all -d synthetic --results results --metric war
    """
    from dferbench.report import compare as cmp

    if against_all == (b is not None):
        raise click.UsageError("give either a second row B or --against-all")
    if against_all:
        click.echo(cmp.format_against_all(cmp.compare_against_all(Path(results), a, dataset, metric=metric,
                                                                  n_resamples=resamples, seed=seed)))
    else:
        click.echo(cmp.format_comparison(cmp.compare(Path(results), a, b, dataset, metric=metric,
                                                     n_resamples=resamples, seed=seed)))
