"""``dferbench weights``: which pretrained CLIP weights each model preset needs, and whether
they are on this machine (looked up locally: no network call)."""

from __future__ import annotations

import click

STATE = {"random": "none needed", "file": "here (file)", "shipped": "here (shipped)", "cache": "here (cache)",
         "download": "MISSING (download)", "missing": "MISSING"}
"""How each :class:`~dferbench.models.weights.WeightsStatus` source reads in the table."""


@click.command(name="weights")
@click.option("--missing", "only_missing", is_flag=True,
              help="List only the weights that are missing and exit 1 if there are any (for scripts).")
def weights(only_missing: bool) -> None:
    """List the CLIP weights every model preset needs and where they are.

    \b
    One row per model and weights (the presets, i.e. datasets, that use them; "others"
    is any dataset without a preset of its own, such as custom), then the weights that
    plugins register. Weights are looked for locally only: the file named by
    model.pretrained, the Hugging Face cache ($HF_HUB_CACHE or $HF_HOME/hub), ~/.cache/clip.
    For each missing one it prints how to fetch it on a machine with internet.
    """
    from tabulate import tabulate

    from dferbench.models.weights import needed_weights

    rows = [row for row in needed_weights() if not (only_missing and row.status.found)]
    table = [[row.model, ", ".join(row.presets), row.status.clip_model, row.status.pretrained or '""',
              STATE[row.status.source], row.status.where] for row in rows]
    if table:
        click.echo(tabulate(table, headers=["model", "presets", "clip_model", "pretrained", "status", "where"]))
    advice = {}
    for row in rows:
        if not row.status.found:
            advice.setdefault((row.status.clip_model, row.status.pretrained), row.status.advice)
    for (clip_model, pretrained), text in advice.items():
        click.echo(f"\nmissing {clip_model} pretrained={pretrained!r}: {text}")
    if only_missing:
        if advice:
            raise SystemExit(1)
        click.echo("every weights file the presets need is here")
