"""``dferbench bench ...``: performance benchmarks (plugins add theirs to the group)."""

from __future__ import annotations

from pathlib import Path

import click

from dferbench.cli.group import BenchGroup, cli, ints


@cli.group(cls=BenchGroup)
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

    rows = benchmark_cache(model=model, dataset=dataset, folds=ints(folds, "--folds"), overrides=list(overrides))
    click.echo(tabulate(rows, headers="keys", tablefmt="pipe"))


@bench.command(name="train")
@click.option("--model", "-m", default="dferclip", show_default=True, help="Model whose network is trained.")
@click.option("--device", default="cpu", show_default=True, help="cpu, cuda, cuda:1 ...")
@click.option("--batch-size", type=int, help="Clips per step (default: 8 on CPU, 48 on CUDA).")
@click.option("--num-frames", type=int, help="Frames sampled per clip (default: 8 on CPU, 16 on CUDA).")
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
@click.option("--accuracy-num-frames", default=8, show_default=True,
              help="Frames sampled per clip in the accuracy runs.")
@click.option("--accuracy-batch-size", default=8, show_default=True, help="Batch size of the accuracy runs.")
@click.option("--accuracy-pretrained", default="auto", show_default=True,
              help="Weights of the tiny CLIP in the accuracy runs: auto (the shipped synthetic-face weights if "
              "present, else random), an open_clip tag or file, or '' for random.")
@click.option("--accuracy-lr-image", type=float, help="Image-encoder learning rate of the accuracy runs "
              "(default: the paper's 1e-5; random weights need more).")
@click.option("--json", "json_out", type=click.Path(dir_okay=False), help="Also write the tables as JSON here.")
def bench_train(model, device, batch_size, num_frames, steps, warmup, workers, prefetch, clip_model, modes, root,
                accuracy_seeds, accuracy_epochs, accuracy_clips, accuracy_num_frames, accuracy_batch_size,
                accuracy_pretrained, accuracy_lr_image, json_out) -> None:
    """Clips/s and peak memory of the authors' training loop (reference) vs dferbench's (fast).

    \b
    Same model, random initialisation, batch and device; frames are JPEG folders on disk.
    Example (the README's GPU row): dferbench bench train --device cuda --accuracy-seeds 1,2,3
    """
    import json

    from dferbench.tools import bench_accuracy as ba
    from dferbench.tools import bench_train as bt
    from dferbench.run.engine import resolve_device

    device = resolve_device(device)
    settings = bt.defaults(device)
    for key, value in {"model": model, "batch_size": batch_size, "num_frames": num_frames, "steps": steps,
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
    seeds = ints(accuracy_seeds, "--accuracy-seeds")
    if seeds:
        compare = ba.CompareSettings(device=device, seeds=seeds, epochs=accuracy_epochs, num_clips=accuracy_clips,
                                     num_frames=accuracy_num_frames, batch_size=accuracy_batch_size,
                                     pretrained=accuracy_pretrained or None, lr_image=accuracy_lr_image,
                                     workers=settings.workers if device.startswith("cuda") else 0)
        acc = ba.compare_training(compare, root=root, echo=lambda m: click.echo(m, err=True))
        click.echo("")
        click.echo(bt.format_table(acc))
        click.echo("")
        click.echo(bt.format_table(ba.summarize_accuracy(acc)))
        report.update(accuracy=acc, accuracy_summary=ba.summarize_accuracy(acc),
                      accuracy_settings=bt.settings_dict(compare))
    save()
    if failed:
        raise click.ClickException(f"mode(s) {', '.join(failed)} failed (their errors are in the table); "
                                   "the other modes' numbers stand")
