"""``dferbench run`` and ``dferbench evaluate``: units on a dataset, trained or from a checkpoint."""

from __future__ import annotations

from pathlib import Path

import click

from dferbench.cli.group import cli, ints, unit_options


@cli.command()
@click.option("--model", "-m", required=True,
              help="Model name (see `dferbench list models`), `all`, or `suite:NAME` (see `dferbench list suites`).")
@click.option("--dataset", "-d", required=True, help="Dataset name (see `dferbench list datasets`).")
@unit_options
@click.option("--rerun", is_flag=True, help="Run units again even when their result exists.")
@click.option("--leaderboard/--no-leaderboard", "show", default=True, help="Print the leaderboard at the end.")
@click.option("--train-dataset", help="Train on this dataset instead (its preset) and test on DATASET over the "
              "classes both share (cross-dataset transfer).")
@click.option("--train-fold", default="same", show_default=True,
              help="With --train-dataset: its fold numbered like each tested fold (same), a fold K, or all its clips.")
@click.option("--train-set", "train_overrides", multiple=True, metavar="data.KEY=VALUE",
              help="With --train-dataset: a data setting of the training dataset, e.g. --train-set data.root=/data/DFEW.")
def run(model, dataset, config_file, overrides, folds, seeds, output, device, rerun, show, train_dataset, train_fold,
        train_overrides) -> None:
    """Train (if the model trains) and evaluate MODEL on DATASET, fold by fold.

    \b
    Settings come from the model's preset for the dataset, then --config, then --set.
    Example: dferbench run -m dferclip -d synthetic --folds 1 --set train.epochs=2
    Transfer: dferbench run -m dferclip -d synthetic-wild --train-dataset synthetic
    """
    from dferbench import api
    from dferbench.errors import UnitsFailed
    from dferbench.report import leaderboard

    failed = None
    try:
        api.run(model, dataset, config=config_file, overrides=overrides, folds=ints(folds, "--folds"),
                seeds=ints(seeds, "--seeds"), output=output, device=device, skip_existing=not rerun,
                echo=lambda m: click.echo(m, err=True), train_dataset=train_dataset, train_fold=train_fold,
                train_overrides=train_overrides)
    except UnitsFailed as exc:  # the finished units still make a leaderboard
        failed = exc
    from dferbench.run.distributed import is_main_process

    if show and is_main_process():  # under torchrun only rank 0 prints
        if train_dataset:
            from dferbench.report.transfer import render

            click.echo(render(Path(output), skip_invalid=True)[0])
        else:
            click.echo(leaderboard.summarize(dataset, Path(output)))
    if failed:
        raise failed


@cli.command()
@click.option("--model", "-m", help="Model that reads a file which is not a dferbench checkpoint (default: the one "
              "registered model that reads such files; a dferbench checkpoint names its own).")
@click.option("--checkpoint", "-c", required=True, type=click.Path(dir_okay=False),
              help="dferbench .checkpoint.safetensors (its .json sidecar next to it), or a file a model reads itself, "
              "such as a .pth written by the DFER-CLIP authors' script.")
@click.option("--dataset", "-d", required=True, help="Dataset to evaluate on (its test split).")
@click.option("--fold", "folds", help="Comma-separated folds (default: 1). The authors release one file per fold.")
@click.option("--set", "overrides", multiple=True, metavar="SECTION.KEY=VALUE", help="Override a data setting.")
@click.option("--output", "-o", default="runs", show_default=True, type=click.Path(file_okay=False))
@click.option("--device", help="cpu, cuda ... (default: cuda if available).")
def evaluate(model, checkpoint, dataset, folds, overrides, output, device) -> None:
    """Evaluate a trained checkpoint on a dataset's test split and record the result.

    \b
    Example (the authors' released DFEW fold-1 model):
      dferbench evaluate -c DFEW_set_1_model_best.pth -d dfew --fold 1 --set data.root=/data/DFEW
    """
    from dferbench import api

    for r in api.evaluate(model, dataset, checkpoint, folds=ints(folds, "--fold"), overrides=overrides, output=output,
                          device=device, echo=lambda m: click.echo(m, err=True)):
        click.echo(f"fold {r['fold']}: UAR {r['uar']:.2f}  WAR {r['war']:.2f}  ({r['n_test']} clips)")
