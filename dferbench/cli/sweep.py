"""``dferbench sweep``: every unit of models x datasets on processes, SLURM or Ray."""

from __future__ import annotations

import sys

import click

from dferbench.cli.group import cli, ints


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
                    [d.strip() for d in datasets.split(",") if d.strip()], folds=ints(folds, "--folds"),
                    seeds=ints(seeds, "--seeds"),
                    overrides=overrides, config=config_file, device=device, output=output, executor=executor,
                    jobs=jobs, rerun=rerun, dry_run=dry_run, echo=lambda m: click.echo(m, err=True), **options)
    keys = ["unit", "status", "uar", "war", "seconds", "job", "command", "error"]
    keys = [k for k in keys if any(k in r for r in rows)]
    click.echo(tabulate([[r.get(k, "") for k in keys] for r in rows], headers=keys))
    if any(r["status"] == "failed" for r in rows):
        sys.exit(1)
