"""The ``dferbench`` command line. Click code only: each command calls dferbench.api."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from dferbench import __version__
from dferbench.errors import DferbenchError

CONTEXT = {"help_option_names": ["-h", "--help"], "max_content_width": 100}


def _ints(text: str | None) -> list[int] | None:
    if not text:
        return None
    try:
        return [int(t) for t in text.replace(" ", "").split(",") if t]
    except ValueError:
        raise click.BadParameter(f"expected comma-separated integers like 1,2,3, got {text!r}") from None


class _Group(click.Group):
    """Turns DferbenchError into one clear line and exit status 2."""

    def invoke(self, ctx: click.Context):
        try:
            return super().invoke(ctx)
        except DferbenchError as exc:
            raise click.ClickException(str(exc)) from None


@click.group(cls=_Group, context_settings=CONTEXT)
@click.version_option(__version__, prog_name="dferbench")
def cli() -> None:
    """Benchmark dynamic facial expression recognition with vision-language models.

    \b
    Typical session:
      dferbench list models                       what can run
      dferbench run --model zeroshot-clip --dataset synthetic
      dferbench run --model dferclip --dataset mafw --set data.root=/data/MAFW
      dferbench leaderboard                       Markdown tables from results/
    Each (model, dataset, fold, seed) unit writes results/<dataset>/<run>/foldK-seedS.json;
    a rerun skips finished units, so an interrupted run resumes where it stopped.
    """


@cli.command()
@click.option("--model", "-m", required=True,
              help="Model name (see `dferbench list models`), `all`, or `suite:NAME` (see `dferbench list suites`).")
@click.option("--dataset", "-d", required=True, help="Dataset name (see `dferbench list datasets`).")
@click.option("--config", "config_file", type=click.Path(dir_okay=False), help="TOML file overriding the preset.")
@click.option("--set", "overrides", multiple=True, metavar="SECTION.KEY=VALUE",
              help="Override one setting, e.g. --set train.epochs=5 (repeatable).")
@click.option("--folds", help="Comma-separated folds to run (default: every fold).")
@click.option("--seeds", help="Comma-separated seeds (default: the preset's).")
@click.option("--output", "-o", default="results", show_default=True, type=click.Path(file_okay=False),
              help="Directory for result files.")
@click.option("--device", help="cpu, cuda, cuda:1 ... (default: cuda if available).")
@click.option("--rerun", is_flag=True, help="Run units again even when their result exists.")
@click.option("--leaderboard/--no-leaderboard", "show", default=True, help="Print the leaderboard at the end.")
def run(model, dataset, config_file, overrides, folds, seeds, output, device, rerun, show) -> None:
    """Train (if the model trains) and evaluate MODEL on DATASET, fold by fold.

    \b
    Settings come from the model's preset for the dataset, then --config, then --set.
    Example: dferbench run -m dferclip -d synthetic --folds 1 --set train.epochs=2
    """
    from dferbench import api, leaderboard

    api.run(model, dataset, config=config_file, overrides=overrides, folds=_ints(folds), seeds=_ints(seeds),
            output=output, device=device, skip_existing=not rerun, echo=lambda m: click.echo(m, err=True))
    if show:
        click.echo(leaderboard.render(dataset, Path(output))[0])


@cli.command()
@click.option("--model", "-m", default="dferclip", show_default=True, help="Model the checkpoint belongs to.")
@click.option("--checkpoint", "-c", required=True, type=click.Path(dir_okay=False),
              help="dferbench .safetensors checkpoint, or a .pth written by the DFER-CLIP authors' script.")
@click.option("--dataset", "-d", required=True, help="Dataset to evaluate on (its test split).")
@click.option("--fold", "folds", help="Comma-separated folds (default: 1). The authors release one file per fold.")
@click.option("--set", "overrides", multiple=True, metavar="SECTION.KEY=VALUE", help="Override a data setting.")
@click.option("--output", "-o", default="results", show_default=True, type=click.Path(file_okay=False))
@click.option("--device", help="cpu, cuda ... (default: cuda if available).")
def evaluate(model, checkpoint, dataset, folds, overrides, output, device) -> None:
    """Evaluate a trained checkpoint on a dataset's test split and record the result.

    \b
    Example (the authors' released DFEW fold-1 model):
      dferbench evaluate -c DFEW_set_1_model_best.pth -d dfew --fold 1 --set data.root=/data/DFEW
    """
    from dferbench import api

    for r in api.evaluate(model, dataset, checkpoint, folds=_ints(folds), overrides=overrides, output=output,
                          device=device, echo=lambda m: click.echo(m, err=True)):
        click.echo(f"fold {r['fold']}: UAR {r['uar']:.2f}  WAR {r['war']:.2f}  ({r['n_test']} clips)")


@cli.command(name="leaderboard")
@click.option("--results", default="results", show_default=True, type=click.Path(file_okay=False),
              help="Directory of result files.")
@click.option("--out", default="leaderboards", show_default=True, type=click.Path(file_okay=False),
              help="Where <dataset>.md and the confusion-matrix PNGs go.")
@click.option("--dataset", "datasets", multiple=True, help="Only these datasets (default: all with results).")
@click.option("--check", is_flag=True, help="Exit 1 if a committed leaderboard differs from the results.")
def leaderboard_cmd(results, out, datasets, check) -> None:
    """Build Markdown leaderboards from result files only (no model is run)."""
    from dferbench import api

    paths = api.leaderboard(results, out, list(datasets) or None, check=check)
    if check:
        if paths:
            click.echo("stale leaderboards (regenerate with `dferbench leaderboard`): " + ", ".join(paths), err=True)
            sys.exit(1)
        click.echo("leaderboards are up to date")
        return
    for p in paths:
        click.echo(f"wrote {p}")


@cli.command(name="check-data")
@click.option("--dataset", "-d", required=True, help="dfew, ferv39k, mafw or custom.")
@click.option("--root", type=click.Path(file_okay=False), help="The dataset's folder (same as --set data.root=...).")
@click.option("--set", "overrides", multiple=True, metavar="data.KEY=VALUE",
              help="Dataset setting, e.g. --set data.annotations=/path/to/txt (repeatable).")
@click.option("--no-decode", is_flag=True, help="Check listings and split files only; do not decode every frame.")
def check_data(dataset, root, overrides, no_decode) -> None:
    """Validate a dataset on disk without training; exit 1 when it is not usable.

    \b
    Reports missing clips, annotated frame counts that disagree with the files, unreadable
    or truncated images and videos, labels out of range, duplicate clips, clips in both
    train and test of a fold, and malformed annotation lines (file:line).
    """
    from dferbench import api

    report = api.check_data(dataset, root=root, overrides=overrides, decode=not no_decode)
    click.echo(report.format())
    if not report.ok:
        sys.exit(1)


@cli.group()
def bench() -> None:
    """Performance benchmarks (numbers for the README come from these)."""


@bench.command(name="data")
@click.option("--clips", default=100, show_default=True, help="Fake clips written to a temporary folder.")
@click.option("--workers", default=1, show_default=True, help="DataLoader workers (1 = one process, interleaved).")
@click.option("--augmentation", default="dfew", show_default=True, type=click.Choice(["dfew", "ferv39k", "mafw"]))
@click.option("--root", type=click.Path(file_okay=False), help="Keep the fake clips here instead of a temp folder.")
def bench_data(clips, workers, augmentation, root) -> None:
    """Clips/s of the training data pipeline: straightforward per-frame PIL vs fast vs packed."""
    from tabulate import tabulate

    from dferbench.bench_data import benchmark_loading

    rows = benchmark_loading(root, clips, workers, augmentation=augmentation)
    click.echo(tabulate(rows, headers="keys", tablefmt="pipe"))


@cli.command(name="plugins")
def plugins_cmd() -> None:
    """List loaded plugins, their versions and the hooks they implement."""
    from tabulate import tabulate

    from dferbench import plugins

    rows = [[p["name"], p["version"], ", ".join(p["hooks"])] for p in plugins.plugin_table()]
    click.echo(tabulate(rows, headers=["plugin", "version", "hooks"]))
    for failure in plugins.load_failures:
        click.echo(f"failed: {failure}", err=True)


@cli.command(name="list")
@click.argument("what", type=click.Choice(["models", "datasets", "prompts", "suites"]))
def list_cmd(what) -> None:
    """List registered models, datasets, prompt text sets or suites with one-line descriptions."""
    from tabulate import tabulate

    from dferbench import api, plugins

    if what == "suites":
        click.echo(tabulate(sorted(api.suites().items()), headers=["name", "description"]))
        return
    registry = {"models": plugins.models, "datasets": plugins.datasets, "prompts": plugins.prompts}[what]()
    rows = [[name, reg.plugin, reg.description] for name, reg in sorted(registry.items())]
    click.echo(tabulate(rows, headers=["name", "plugin", "description"]))


@cli.command()
@click.option("--classes", required=True, help="Comma-separated class names, e.g. happiness,sadness,anger.")
@click.option("--endpoint", required=True, help="OpenAI-compatible API base URL, e.g. http://localhost:8000/v1.")
@click.option("--model", "llm", required=True, help="Model name the endpoint serves.")
@click.option("--output", "-o", default="descriptors.toml", show_default=True, type=click.Path(dir_okay=False),
              help="Descriptor file to write; use it with --set model.text=file:PATH.")
@click.option("--api-key", envvar="OPENAI_API_KEY", help="Bearer token (default: $OPENAI_API_KEY).")
def describe(classes, endpoint, llm, output, api_key) -> None:
    """Write one descriptor sentence per class by asking a language model, as the paper did."""
    from dferbench import describe as d

    names = [c.strip() for c in classes.split(",") if c.strip()]
    found = d.describe(names, endpoint, llm, api_key=api_key)
    d.write_descriptor_file(Path(output), found, endpoint=endpoint, model=llm)
    for c, text in found.items():
        click.echo(f"{c}: {text}")
    click.echo(f"wrote {output}")


def main() -> None:
    cli(prog_name="dferbench")


if __name__ == "__main__":
    main()
