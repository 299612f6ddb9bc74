"""``dferbench robustness``: a model tested clean and under test-time corruptions."""

from __future__ import annotations

from pathlib import Path

import click

from dferbench.cli.group import cli, ints, unit_options


def _names(text: str | None) -> list[str] | None:
    return [t.strip() for t in text.split(",") if t.strip()] if text else None


@cli.command()
@click.option("--model", "-m",
              help="Model name (see `dferbench list models`), `all`, or `suite:NAME` (see `dferbench list suites`); "
              "with --checkpoint, the model of a file that is not a dferbench checkpoint (default: the one "
              "registered model that reads such files).")
@click.option("--checkpoint", "-c", type=click.Path(dir_okay=False),
              help="Score this trained network instead of training (a dferbench .checkpoint.safetensors, or the "
              "DFER-CLIP authors' .pth); folds default to 1.")
@click.option("--dataset", "-d", required=True, help="Dataset name (see `dferbench list datasets`).")
@click.option("--corruptions", help="Comma-separated corruptions (default: all 13; see dferbench.data.corruptions).")
@click.option("--severities", help="Comma-separated severities of 1-5 (default: all five; the mCE needs all five).")
@click.option("--corruption-seed", default=0, show_default=True,
              help="Seed of the corruptions' random draws, the same for every model and unit seed.")
@unit_options
@click.option("--rerun", is_flag=True, help="Run every cell again even when its result exists.")
@click.option("--baseline", default="zeroshot-clip[text=descriptors]", show_default=True,
              help="Run name whose errors normalise the mCE (when its results are in --output).")
@click.option("--plot", type=click.Path(dir_okay=False), help="Also write the plot of UAR against severity here (PNG).")
def robustness(model, checkpoint, dataset, corruptions, severities, corruption_seed, config_file, overrides, folds,
               seeds, output, device, rerun, baseline, plot) -> None:
    """Test MODEL (trained once per unit) or a --checkpoint clean and under each corruption x severity.

    \b
    Each (corruption, severity) cell is a result of its own,
    OUTPUT/<dataset>/<run>/robustness/<corruption>-<severity>/foldK-seedS.json, so a rerun
    resumes at the first missing cell. Prints UAR/WAR per corruption and severity and the
    mean corruption error (ImageNet-C's mCE, raw and normalised by --baseline).
    Example: dferbench robustness -m dferclip -d synthetic --folds 1 --corruptions gaussian_blur,frame_drop
    """
    from dferbench import api
    from dferbench.errors import UnitsFailed
    from dferbench.report import robustness as report

    failed = None
    try:
        api.robustness(model, dataset, checkpoint=checkpoint, corruptions=_names(corruptions),
                       severities=ints(severities, "--severities"), corruption_seed=corruption_seed,
                       config=config_file, overrides=overrides,
                       folds=ints(folds, "--folds"), seeds=ints(seeds, "--seeds"), output=output, device=device,
                       skip_existing=not rerun, echo=lambda m: click.echo(m, err=True))
    except UnitsFailed as exc:  # the finished cells still make a table
        failed = exc
    markdown, rows = report.render(dataset, Path(output), baseline=baseline, skip_invalid=True)
    click.echo(markdown)
    if plot:
        report.plot(rows, Path(plot), dataset)
        click.echo(f"wrote {plot}", err=True)
    if failed:
        raise failed
