"""``dferbench check-data``: a dataset on disk, checked without training."""

from __future__ import annotations

import sys

import click

from dferbench.cli.group import cli


@cli.command(name="check-data")
@click.option("--dataset", "-d", required=True, help="Any registered dataset (see `dferbench list datasets`).")
@click.option("--root", type=click.Path(file_okay=False), help="The dataset's folder (same as --set data.root=...).")
@click.option("--set", "overrides", multiple=True, metavar="data.KEY=VALUE",
              help="Dataset setting, e.g. --set data.annotations=/path/to/txt (repeatable).")
@click.option("--no-decode", is_flag=True, help="Check listings and split files only; do not decode every frame.")
def check_data(dataset, root, overrides, no_decode) -> None:
    """Validate a dataset without training; exit 1 when it is not usable.

    \b
    Every dataset: every frame the sampler can draw decodes, labels in range, no duplicate
    clips, no clip in both train and test of a fold, no empty test split, frame counts.
    Datasets with their own check add theirs first: for dfew, ferv39k, mafw and custom,
    malformed annotation lines (file:line), missing clips, annotated frame counts that
    disagree with the files, unreadable or truncated images and videos.
    """
    from dferbench import api

    report = api.check_data(dataset, root=root, overrides=overrides, decode=not no_decode)
    click.echo(report.format())
    if not report.ok:
        sys.exit(1)
