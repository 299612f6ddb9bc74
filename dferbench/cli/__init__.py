"""The ``dferbench`` command line. Click code only: each command calls dferbench.api."""

from __future__ import annotations

import os
import signal
import sys
from pathlib import Path

import click

from dferbench import __version__
from dferbench.errors import DferbenchError, Terminated, storage_error

CONTEXT = {"help_option_names": ["-h", "--help"], "max_content_width": 100}


def _ints(text: str | None, option: str) -> list[int] | None:
    """``--option 1,2,3`` as integers; None when the option was not given."""
    if text is None:
        return None
    parts = [t for t in text.replace(" ", "").split(",") if t]
    if not parts:
        raise DferbenchError(f"{option} is empty: give comma-separated integers like 1,2,3, or leave {option} out")
    try:
        return [int(t) for t in parts]
    except ValueError:
        raise DferbenchError(f"{option} expects comma-separated integers like 1,2,3, got {text!r}") from None


def _fail(message: str, exit_code: int) -> click.ClickException:
    error = click.ClickException(message)
    error.exit_code = exit_code
    return error


class _Group(click.Group):
    """Adds the commands plugins register; turns errors and interruptions into one line and
    the exit status of :mod:`dferbench.errors` (tracebacks only with DFERBENCH_DEBUG=1)."""

    _plugin_commands: dict[str, click.Command] | None = None

    def plugin_commands(self) -> dict[str, click.Command]:
        if self._plugin_commands is None:
            from dferbench.plugin import manager

            found = {}
            for command in manager.commands():
                if command.name in self.commands or command.name in found:
                    click.echo(f"warning: a plugin's command {command.name!r} clashes with another; ignored", err=True)
                    continue
                found[command.name] = command
            self._plugin_commands = found
        return self._plugin_commands

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(set(super().list_commands(ctx)) | set(self.plugin_commands()))

    def get_command(self, ctx: click.Context, name: str) -> click.Command | None:
        return super().get_command(ctx, name) or self.plugin_commands().get(name)

    def invoke(self, ctx: click.Context):
        debug = bool(os.environ.get("DFERBENCH_DEBUG"))
        try:
            return super().invoke(ctx)
        except click.UsageError as exc:  # one line too, with where to look
            if debug:
                raise
            where = exc.ctx.command_path if exc.ctx else ctx.command_path
            raise _fail(f"{exc.format_message()} (see `{where} -h`)", exc.exit_code) from None
        except DferbenchError as exc:
            if debug:
                raise
            raise _fail(str(exc), exc.exit_code) from None
        except OSError as exc:
            error = storage_error(exc)
            if error is None or debug:
                raise
            raise _fail(str(error), error.exit_code) from None
        except (KeyboardInterrupt, Terminated) as exc:
            what, code = ("interrupted", 130) if isinstance(exc, KeyboardInterrupt) else ("terminated (SIGTERM)", 143)
            kept = getattr(exc, "finished_units", None)
            if kept is not None:
                what += f"; {kept} finished units kept; rerun the same command to resume"
            click.echo(what, err=True)
            ctx.exit(code)


@click.group(cls=_Group, context_settings=CONTEXT)
@click.version_option(__version__, prog_name="dferbench")
def cli() -> None:
    """Benchmark dynamic facial expression recognition with vision-language models.

    \b
    Typical session:
      dferbench list models                       what can run
      dferbench run --model zeroshot-clip --dataset synthetic
      dferbench run --model dferclip --dataset mafw --set data.root=/data/MAFW
      dferbench leaderboard                       Markdown tables from runs/
    Each (model, dataset, fold, seed) unit writes runs/<dataset>/<run>/foldK-seedS.json;
    a rerun skips finished units, so an interrupted run resumes where it stopped.
    Exit status: 0 done, 1 some units failed, 2 bad usage or settings, 130 Ctrl-C, 143 SIGTERM.
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
@click.option("--output", "-o", default="runs", show_default=True, type=click.Path(file_okay=False),
              help="Directory for result files.")
@click.option("--device", help="cpu, cuda, cuda:1 ... (default: cuda if available).")
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
        api.run(model, dataset, config=config_file, overrides=overrides, folds=_ints(folds, "--folds"),
                seeds=_ints(seeds, "--seeds"), output=output, device=device, skip_existing=not rerun,
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
@click.option("--model", "-m", help="Model that reads a file which is not a dferbench checkpoint (default: dferclip; "
              "a dferbench checkpoint names its own).")
@click.option("--checkpoint", "-c", required=True, type=click.Path(dir_okay=False),
              help="dferbench .checkpoint.safetensors (its .json sidecar next to it), or a .pth written by the "
              "DFER-CLIP authors' script.")
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

    for r in api.evaluate(model, dataset, checkpoint, folds=_ints(folds, "--fold"), overrides=overrides, output=output,
                          device=device, echo=lambda m: click.echo(m, err=True)):
        click.echo(f"fold {r['fold']}: UAR {r['uar']:.2f}  WAR {r['war']:.2f}  ({r['n_test']} clips)")


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

    from dferbench.tools.bench_data import benchmark_loading

    rows = benchmark_loading(root, clips, workers, augmentation=augmentation)
    click.echo(tabulate(rows, headers="keys", tablefmt="pipe"))


@bench.command(name="stats")
@click.option("--clips", default=10000, show_default=True, help="Simulated test clips.")
@click.option("--resamples", default=1000, show_default=True)
@click.option("--classes", default=7, show_default=True)
def bench_stats(clips, resamples, classes) -> None:
    """Seconds of one bootstrap interval and one paired test on one thread."""
    from tabulate import tabulate

    from dferbench.tools.bench_stats import benchmark_stats

    rows = benchmark_stats(n_clips=clips, n_resamples=resamples, n_classes=classes)
    click.echo(tabulate(rows, headers="keys", tablefmt="pipe"))


@bench.command(name="cache")
@click.option("--model", "-m", default="zeroshot-clip", show_default=True, help="A model that reads frozen features.")
@click.option("--dataset", "-d", default="synthetic", show_default=True)
@click.option("--folds", default="1,2", show_default=True, help="Comma-separated folds.")
@click.option("--set", "overrides", multiple=True, metavar="SECTION.KEY=VALUE", help="Override a setting.")
def bench_cache(model, dataset, folds, overrides) -> None:
    """Wall time of several prompt variants x folds without, then with, the frozen-feature cache."""
    from tabulate import tabulate

    from dferbench.tools.bench_cache import benchmark_cache

    rows = benchmark_cache(model=model, dataset=dataset, folds=_ints(folds, "--folds"), overrides=list(overrides))
    click.echo(tabulate(rows, headers="keys", tablefmt="pipe"))


@bench.command(name="coop-memory")
@click.option("--clip-model", default="ViT-B-32-quickgelu", show_default=True, help="open_clip architecture (random weights).")
@click.option("--device", default="cpu", show_default=True)
@click.option("--precision", default="auto", show_default=True, type=click.Choice(["auto", "bf16", "fp32"]))
@click.option("--batch-sizes", default="1,8,32", show_default=True, help="Comma-separated batch sizes.")
def bench_coop_memory(clip_model, device, precision, batch_sizes) -> None:
    """Memory and step time of one CoOp and one Co-CoOp training step, side by side."""
    from tabulate import tabulate

    from dferbench.tools.bench_coop import coop_memory

    rows = coop_memory(clip_model=clip_model, batch_sizes=_ints(batch_sizes, "--batch-sizes"), device=device,
                       precision=precision)
    click.echo(tabulate(rows, headers="keys", tablefmt="pipe"))


@bench.command(name="train")
@click.option("--model", "-m", default="dferclip", show_default=True, help="Model whose network is trained.")
@click.option("--device", default="cpu", show_default=True, help="cpu, cuda, cuda:1 ...")
@click.option("--batch-size", type=int, help="Clips per step (default: 8 on CPU, 48 on CUDA).")
@click.option("--frames", type=int, help="Frames per clip (default: 8 on CPU, 16 on CUDA).")
@click.option("--steps", type=int, help="Timed steps per mode (default: 4 on CPU, 20 on CUDA).")
@click.option("--warmup", type=int, help="Untimed steps before (default: 1 on CPU, 5 on CUDA).")
@click.option("--workers", type=int, help="DataLoader workers (default: 0 on CPU, the CPUs less one on CUDA).")
@click.option("--prefetch", type=int, help="Batches finished ahead on the device in the fast modes (default: 2 on "
              "CUDA, 0 on CPU; 0 = inline). The reference mode never prefetches.")
@click.option("--clip-model", help="open_clip architecture, random weights (default: dferbench-tiny on CPU, "
              "ViT-B-32-quickgelu on CUDA).")
@click.option("--modes", default="reference,fast", show_default=True,
              help="Comma-separated: reference, fast, fast-cpu-decode, fast-gpu-decode, fast-compile, model-only-fp32, "
              "model-only-bf16.")
@click.option("--root", type=click.Path(file_okay=False), help="Keep the JPEG frame folders here (default: temporary).")
@click.option("--accuracy-seeds", help="Also train both modes for a few epochs on the synthetic benchmark with "
              "these comma-separated seeds and compare UAR/WAR.")
@click.option("--accuracy-epochs", default=2, show_default=True, help="Epochs of each accuracy run.")
@click.option("--accuracy-clips", default=70, show_default=True, help="Synthetic clips (5 folds; fold 1 is used).")
@click.option("--accuracy-frames", default=8, show_default=True, help="Frames per clip in the accuracy runs.")
@click.option("--accuracy-batch-size", default=8, show_default=True, help="Batch size of the accuracy runs.")
@click.option("--accuracy-pretrained", default="auto", show_default=True,
              help="Weights of the tiny CLIP in the accuracy runs: auto (the shipped synthetic-face weights if "
              "present, else random), an open_clip tag or file, or '' for random.")
@click.option("--accuracy-lr-image", type=float, help="Image-encoder learning rate of the accuracy runs "
              "(default: the paper's 1e-5; random weights need more).")
@click.option("--json", "json_out", type=click.Path(dir_okay=False), help="Also write the tables as JSON here.")
def bench_train(model, device, batch_size, frames, steps, warmup, workers, prefetch, clip_model, modes, root,
                accuracy_seeds, accuracy_epochs, accuracy_clips, accuracy_frames, accuracy_batch_size,
                accuracy_pretrained, accuracy_lr_image, json_out) -> None:
    """Clips/s and peak memory of the authors' training loop (reference) vs dferbench's (fast).

    \b
    Same model, random initialisation, batch and device; frames are JPEG folders on disk.
    Example (the README's GPU row): dferbench bench train --device cuda --accuracy-seeds 1,2,3
    """
    import json

    from dferbench.tools import bench_train as bt
    from dferbench.run.engine import resolve_device

    device = resolve_device(device)
    settings = bt.defaults(device)
    for key, value in {"model": model, "batch_size": batch_size, "frames": frames, "steps": steps,
                       "warmup": warmup, "workers": workers, "prefetch": prefetch, "clip_model": clip_model}.items():
        if value is not None:
            setattr(settings, key, value)
    settings.modes = [m.strip() for m in modes.split(",") if m.strip()]
    env = bt.environment(device)
    click.echo(f"device: {env['card']} ({device}); torch {env['torch']}, torchvision {env['torchvision']}, "
               f"{env['cpus']} CPUs")
    report: dict = {"environment": env, "settings": bt.settings_dict(settings)}

    def save(**parts) -> None:
        report.update(parts)
        if json_out:
            Path(json_out).write_text(json.dumps(report, indent=1) + "\n")

    failed = []
    if settings.modes:  # --modes "" runs the accuracy comparison only
        rows = bt.benchmark_training(settings, root=root, echo=lambda m: click.echo(m, err=True),
                                     on_row=lambda rows: save(timing=rows))
        click.echo(bt.timing_table(rows))
        failed = [r["mode"] for r in rows if "error" in r]
    seeds = _ints(accuracy_seeds, "--accuracy-seeds")
    if seeds:
        compare = bt.CompareSettings(device=device, seeds=seeds, epochs=accuracy_epochs, num_clips=accuracy_clips,
                                     frames=accuracy_frames, batch_size=accuracy_batch_size,
                                     pretrained=accuracy_pretrained or None, lr_image=accuracy_lr_image,
                                     workers=settings.workers if device.startswith("cuda") else 0)
        acc = bt.compare_training(compare, root=root, echo=lambda m: click.echo(m, err=True))
        click.echo("")
        click.echo(bt.format_table(acc))
        click.echo("")
        click.echo(bt.format_table(bt.summarize_accuracy(acc)))
        report.update(accuracy=acc, accuracy_summary=bt.summarize_accuracy(acc),
                      accuracy_settings=bt.settings_dict(compare))
    save()
    if failed:
        raise click.ClickException(f"mode(s) {', '.join(failed)} failed (their errors are in the table); "
                                   "the other modes' numbers stand")


@cli.command()
@click.option("--models", "-m", required=True, help="Comma-separated model names, `all` or `suite:NAME`.")
@click.option("--datasets", "-d", required=True, help="Comma-separated dataset names.")
@click.option("--folds", help="Comma-separated folds (default: every fold of each dataset).")
@click.option("--seeds", help="Comma-separated seeds (default: each model's preset).")
@click.option("--config", "config_file", type=click.Path(dir_okay=False), help="TOML file overriding the presets.")
@click.option("--set", "overrides", multiple=True, metavar="SECTION.KEY=VALUE", help="Override a setting (repeatable).")
@click.option("--output", "-o", default="runs", show_default=True, type=click.Path(file_okay=False))
@click.option("--device", help="Device of every unit (default: cuda if available).")
@click.option("--executor", type=click.Choice(["local", "slurm", "ray"]), default="local", show_default=True)
@click.option("--jobs", "-j", default=1, show_default=True,
              help="Units at once: local processes, or the SLURM array's parallelism.")
@click.option("--gpus", help="local: comma-separated GPU ids; job slot k uses GPU k mod N.")
@click.option("--partition", help="slurm: partition.")
@click.option("--time-min", default=240, show_default=True, help="slurm: time limit of one unit, minutes.")
@click.option("--gpus-per-task", default=1, show_default=True, help="slurm/ray: GPUs per unit.")
@click.option("--cpus-per-task", default=8, show_default=True, help="slurm/ray: CPUs per unit.")
@click.option("--mem-gb", type=int, help="slurm: memory of one unit, GB (default: the partition's).")
@click.option("--slurm-opt", "slurm_opts", multiple=True, metavar="KEY=VALUE",
              help="slurm: any other sbatch option, e.g. --slurm-opt account=myproj --slurm-opt qos=high "
              "(repeatable).")
@click.option("--cluster", help="slurm: submitit cluster (`local` runs the array on this machine).")
@click.option("--no-wait", is_flag=True, help="slurm: submit and return; rerun later (or `leaderboard`) to collect.")
@click.option("--address", help="ray: address of the cluster to join (default: a local Ray instance).")
@click.option("--rerun", is_flag=True, help="Run units again even when their result exists.")
@click.option("--dry-run", is_flag=True, help="List the units and their `dferbench run` commands; run nothing.")
def sweep(models, datasets, folds, seeds, config_file, overrides, output, device, executor, jobs, gpus, partition,
          time_min, gpus_per_task, cpus_per_task, mem_gb, slurm_opts, cluster, no_wait, address, rerun,
          dry_run) -> None:
    """Run every (model, dataset, fold, seed) unit on processes, a SLURM cluster or Ray.

    \b
    Each unit writes its own result file exactly as `dferbench run` does, so finished units
    are skipped on a rerun and `dferbench leaderboard` reads the results as usual.
    Examples:
      dferbench sweep -m dferclip,zeroshot-clip -d dfew,mafw --seeds 1,2,3 --executor local --jobs 4 --gpus 0,1,2,3
      dferbench sweep -m suite:paper -d dfew --seeds 1,2,3 --executor slurm --jobs 64 --partition gpu
    """
    from tabulate import tabulate

    from dferbench.run import sweep as sw

    options = {}
    on_cpu = device == "cpu"
    if executor == "local":
        options["gpus"] = [g.strip() for g in gpus.split(",")] if gpus else None
    elif executor == "slurm":
        sbatch = {}
        for opt in slurm_opts:
            key, sep, value = opt.partition("=")
            if not sep or not key.strip():
                raise click.BadParameter(f"expected KEY=VALUE, got {opt!r}", param_hint="--slurm-opt")
            sbatch[key.strip()] = value.strip()
        options.update(cluster=cluster, partition=partition, time_min=time_min,
                       gpus_per_task=0 if on_cpu else gpus_per_task, cpus_per_task=cpus_per_task, mem_gb=mem_gb,
                       extra={"slurm_additional_parameters": sbatch} if sbatch else None, wait=not no_wait)
    else:
        options.update(address=address, gpus_per_task=0 if on_cpu else gpus_per_task,
                       gpus_required=bool(device and device.startswith("cuda")),
                       cpus_per_task=cpus_per_task if address else 1)
    rows = sw.sweep([m.strip() for m in models.split(",") if m.strip()],
                    [d.strip() for d in datasets.split(",") if d.strip()], folds=_ints(folds, "--folds"),
                    seeds=_ints(seeds, "--seeds"),
                    overrides=overrides, config=config_file, device=device, output=output, executor=executor,
                    jobs=jobs, rerun=rerun, dry_run=dry_run, echo=lambda m: click.echo(m, err=True), **options)
    keys = ["unit", "status", "uar", "war", "seconds", "job", "command", "error"]
    keys = [k for k in keys if any(k in r for r in rows)]
    click.echo(tabulate([[r.get(k, "") for k in keys] for r in rows], headers=keys))
    if any(r["status"] == "failed" for r in rows):
        sys.exit(1)


@cli.command(name="plugins")
def plugins_cmd() -> None:
    """List loaded plugins, their versions and the hooks they implement."""
    from tabulate import tabulate

    from dferbench.plugin import manager as plugins

    rows = [[p["name"], p["version"], ", ".join(p["hooks"])] for p in plugins.plugin_table()]
    click.echo(tabulate(rows, headers=["plugin", "version", "hooks"]))
    for failure in plugins.load_failures:
        click.echo(f"failed: {failure}", err=True)


@cli.command(name="list")
@click.argument("what", type=click.Choice(["models", "datasets", "prompts", "suites"]))
def list_cmd(what) -> None:
    """List registered models, datasets, prompt text sets or suites with one-line descriptions."""
    from tabulate import tabulate

    from dferbench import api
    from dferbench.plugin import manager as plugins

    if what == "suites":
        click.echo(tabulate(sorted(api.suites().items()), headers=["name", "description"]))
        return
    registry = {"models": plugins.models, "datasets": plugins.datasets, "prompts": plugins.prompts}[what]()
    rows = [[name, reg.plugin, reg.description] for name, reg in sorted(registry.items())]
    click.echo(tabulate(rows, headers=["name", "plugin", "description"]))


from dferbench.cli.weights import weights as _weights  # noqa: E402  (its own module)

cli.add_command(_weights)

from dferbench.cli.predict import predict as _predict  # noqa: E402

cli.add_command(_predict)

from dferbench.cli.robustness import robustness as _robustness  # noqa: E402  (its own module)

cli.add_command(_robustness)


_MAIN_PID = os.getpid()


def _on_sigterm(signum: int, frame: object) -> None:
    if os.getpid() != _MAIN_PID:  # a forked DataLoader worker: just end
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
        os.kill(os.getpid(), signal.SIGTERM)
        return
    raise Terminated()


def main() -> None:
    signal.signal(signal.SIGTERM, _on_sigterm)  # unwind like Ctrl-C: locks released, temporary files removed
    cli(prog_name="dferbench")


if __name__ == "__main__":
    main()
