"""Sweeps: every (model, dataset, fold, seed) unit of a comparison, spread over processes,
a SLURM cluster or a Ray cluster.

Each unit is exactly what ``dferbench run --model M --dataset D --folds F --seeds S`` does
(:func:`run_unit` calls :func:`dferbench.runner.run_plan` with one fold and one seed), so
it writes its own result file in the usual place: resume (units whose result exists with
the same config hash are skipped before anything is submitted) and ``dferbench
leaderboard`` work the same whatever ran the units.

Executors:

* ``local``: ``jobs`` concurrent ``python -m dferbench run`` subprocesses; with ``gpus``
  each job slot is pinned to one GPU (``CUDA_VISIBLE_DEVICES``).
* ``slurm``: one submitit job array (``pip install 'dferbench[slurm]'``); at most
  ``jobs`` array tasks run at once. ``cluster="local"`` runs the array on this machine
  (what the tests do).
* ``ray``: one Ray task per unit (``pip install 'dferbench[ray]'``) on the cluster that
  ``ray.init(address)`` joins, or a local Ray instance.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from queue import Queue
from typing import Any, Callable

from dferbench.errors import DferbenchError

EXECUTORS = ("local", "slurm", "ray")


@dataclass(frozen=True)
class Unit:
    """One (model, dataset, fold, seed) with the settings it runs under."""

    model: str
    dataset: str
    fold: int
    seed: int
    overrides: tuple[str, ...] = ()
    config: str | None = None
    device: str | None = None
    output: str = "results"
    run_name: str = ""
    rerun: bool = False

    @property
    def label(self) -> str:
        return f"{self.run_name or self.model} on {self.dataset} fold {self.fold} seed {self.seed}"

    @property
    def slug(self) -> str:
        import re

        return re.sub(r"[^A-Za-z0-9._+-]+", "-", f"{self.dataset}-{self.run_name or self.model}-f{self.fold}-s{self.seed}")

    def argv(self) -> list[str]:
        """The ``dferbench run`` command line of this unit."""
        args = [sys.executable, "-m", "dferbench", "run", "--model", self.model, "--dataset", self.dataset,
                "--folds", str(self.fold), "--seeds", str(self.seed), "--output", self.output, "--no-leaderboard"]
        if self.config:
            args += ["--config", self.config]
        if self.device:
            args += ["--device", self.device]
        for o in self.overrides:
            args += ["--set", o]
        if self.rerun:
            args.append("--rerun")
        return args


@dataclass
class SweepPlan:
    units: list[Unit] = field(default_factory=list)  # to run
    done: list[Unit] = field(default_factory=list)  # result exists with the same config


def plan_sweep(models: list[str], datasets: list[str], *, folds: list[int] | None = None,
               seeds: list[int] | None = None, overrides: list[str] | tuple[str, ...] = (),
               config: str | None = None, device: str | None = None, output: str | Path = "results",
               skip_existing: bool = True) -> SweepPlan:
    """The product models x datasets x folds x seeds, validated before anything runs.

    Model names may be ``all`` or ``suite:NAME`` (expanded per dataset). Folds default to
    every fold of each dataset, seeds to each model's preset.
    """
    from dferbench import api, plugins, runner
    from dferbench.results import UnitKey, load_result

    result = SweepPlan()
    seen: set[tuple[str, str, int, int]] = set()
    for dataset in datasets:
        dataset_folds: list[int] | None = None
        for model_arg in models:
            for model, extra in api.expand(model_arg, dataset):
                unit_overrides = tuple(extra) + tuple(overrides)
                plan = runner.plan(model, dataset, config_file=config, overrides=list(unit_overrides),
                                   device=device)
                unit_folds = folds or plan.config["protocol"]["folds"]
                if not unit_folds:
                    if dataset_folds is None:
                        dataset_folds = plugins.get("dataset", dataset).target(dict(plan.config["data"])).folds
                    unit_folds = dataset_folds
                selection = plan.config["protocol"]["selection"]
                for fold in unit_folds:
                    for seed in seeds or plan.config["protocol"]["seeds"]:
                        key = (plan.run_name, dataset, fold, seed)
                        if key in seen:
                            continue
                        seen.add(key)
                        unit = Unit(model, dataset, int(fold), int(seed), unit_overrides, config, device,
                                    str(output), plan.run_name, rerun=not skip_existing)
                        path = UnitKey(plan.run_name, dataset, fold, seed, selection).path(Path(output))
                        existing = load_result(path) if skip_existing else None
                        if existing and existing.get("config_hash") == plan.hash:
                            result.done.append(unit)
                        else:
                            result.units.append(unit)
    return result


def run_unit(unit: Unit) -> dict[str, Any]:
    """Run one unit in this process, as ``dferbench run`` would; a short summary back."""
    from dferbench import runner

    start = time.perf_counter()
    plan = runner.plan(unit.model, unit.dataset, config_file=unit.config, overrides=list(unit.overrides),
                       folds=[unit.fold], seeds=[unit.seed], device=unit.device)
    results = runner.run_plan(plan, output=unit.output, echo=lambda m: print(m, file=sys.stderr, flush=True),
                              progress=False, skip_existing=not unit.rerun)
    r = results[0]
    return {"unit": unit.label, "status": "done", "uar": r["uar"], "war": r["war"],
            "seconds": round(time.perf_counter() - start, 1)}


def _failure(unit: Unit, message: str) -> dict[str, Any]:
    return {"unit": unit.label, "status": "failed", "error": message.strip().splitlines()[-1] if message.strip() else ""}


def run_local(units: list[Unit], *, jobs: int = 1, gpus: list[str] | None = None, log_dir: Path,
              echo: Callable[[str], None] = print) -> list[dict[str, Any]]:
    """``jobs`` concurrent ``dferbench run`` subprocesses; slot ``k`` uses ``gpus[k % len(gpus)]``."""
    log_dir.mkdir(parents=True, exist_ok=True)
    slots: Queue[int] = Queue()
    for k in range(max(1, jobs)):
        slots.put(k)

    def one(unit: Unit) -> dict[str, Any]:
        slot = slots.get()
        try:
            env = dict(os.environ)
            if gpus:
                env["CUDA_VISIBLE_DEVICES"] = gpus[slot % len(gpus)]
            log = log_dir / f"{unit.slug}.log"
            start = time.perf_counter()
            with open(log, "w") as f:
                proc = subprocess.run(unit.argv(), stdout=f, stderr=subprocess.STDOUT, env=env)
            text = log.read_text()
            if proc.returncode != 0:
                echo(f"failed {unit.label} (exit {proc.returncode}; log {log})")
                return _failure(unit, text)
            line = next((ln for ln in reversed(text.splitlines()) if ln.startswith("done ")), "")
            echo(f"done   {unit.label}: {line.split(':', 1)[-1].strip() if line else 'ok'}")
            return {"unit": unit.label, "status": "done", "log": str(log),
                    "seconds": round(time.perf_counter() - start, 1)}
        finally:
            slots.put(slot)

    with ThreadPoolExecutor(max_workers=max(1, jobs)) as pool:
        return list(pool.map(one, units))


def run_slurm(units: list[Unit], *, jobs: int, log_dir: Path, cluster: str | None = None,
              partition: str | None = None, time_min: int = 240, gpus_per_task: int = 1, cpus_per_task: int = 8,
              mem_gb: int | None = None, extra: dict[str, Any] | None = None, wait: bool = True,
              echo: Callable[[str], None] = print) -> list[dict[str, Any]]:
    """One submitit job array over ``units``; at most ``jobs`` tasks at once."""
    try:
        import submitit
    except ImportError:
        raise DferbenchError("the slurm executor needs submitit: pip install 'dferbench[slurm]'") from None
    executor = submitit.AutoExecutor(folder=str(log_dir / "%j"), cluster=cluster)
    gpus = gpus_per_task if executor.cluster == "slurm" or _cuda_available() else 0
    params: dict[str, Any] = {"name": "dferbench", "timeout_min": time_min, "cpus_per_task": cpus_per_task,
                              "gpus_per_node": gpus, "tasks_per_node": 1, "nodes": 1,
                              "slurm_array_parallelism": max(1, jobs), "slurm_partition": partition,
                              "mem_gb": mem_gb}
    params = {k: v for k, v in params.items() if v is not None}
    params.update(extra or {})
    executor.update_parameters(**params)
    submitted = executor.map_array(run_unit, units)
    echo(f"submitted {len(submitted)} units as {executor.cluster} job array "
         f"{submitted[0].job_id.split('_')[0] if submitted else '-'} (logs in {log_dir})")
    if not wait:
        return [{"unit": u.label, "status": "submitted", "job": j.job_id} for u, j in zip(units, submitted)]
    out = []
    for unit, job in zip(units, submitted):
        try:
            row = job.result()
            echo(f"done   {unit.label}: UAR {row['uar']:.2f}  WAR {row['war']:.2f}")
            out.append({**row, "job": job.job_id})
        except Exception as exc:  # submitit raises FailedJobError with the job's traceback
            echo(f"failed {unit.label} (job {job.job_id}; logs in {log_dir})")
            out.append({**_failure(unit, str(exc)), "job": job.job_id})
    return out


def _cuda_available() -> bool:
    import torch

    return torch.cuda.is_available()


def run_ray(units: list[Unit], *, address: str | None = None, num_cpus: int | None = None,
            gpus_per_task: float = 0, cpus_per_task: float = 1,
            echo: Callable[[str], None] = print) -> list[dict[str, Any]]:
    """One Ray task per unit, on the cluster at ``address`` or a local Ray instance."""
    try:
        import ray
    except ImportError:
        raise DferbenchError("the ray executor needs ray: pip install 'dferbench[ray]'") from None
    started = False
    if not ray.is_initialized():
        kwargs: dict[str, Any] = {"include_dashboard": False, "log_to_driver": False}
        if address:
            kwargs["address"] = address
        elif num_cpus:
            kwargs["num_cpus"] = num_cpus
        ray.init(**kwargs)
        started = True
    try:
        task = ray.remote(num_cpus=cpus_per_task, num_gpus=gpus_per_task, max_retries=0)(run_unit)
        refs = [task.remote(u) for u in units]
        out = []
        for unit, ref in zip(units, refs):
            try:
                row = ray.get(ref)
                echo(f"done   {unit.label}: UAR {row['uar']:.2f}  WAR {row['war']:.2f}")
                out.append(row)
            except Exception as exc:
                echo(f"failed {unit.label}: {str(exc).strip().splitlines()[-1] if str(exc).strip() else exc}")
                out.append(_failure(unit, str(exc)))
        return out
    finally:
        if started:
            ray.shutdown()


def sweep(models: list[str], datasets: list[str], *, folds: list[int] | None = None, seeds: list[int] | None = None,
          overrides: list[str] | tuple[str, ...] = (), config: str | None = None, device: str | None = None,
          output: str | Path = "results", executor: str = "local", jobs: int = 1, rerun: bool = False,
          dry_run: bool = False, echo: Callable[[str], None] = print, **executor_options: Any) -> list[dict[str, Any]]:
    """Plan the units, skip finished ones, run the rest with ``executor``; one row per unit."""
    if executor not in EXECUTORS:
        raise DferbenchError(f"unknown executor {executor!r}; valid: {', '.join(EXECUTORS)}")
    plan = plan_sweep(models, datasets, folds=folds, seeds=seeds, overrides=overrides, config=config, device=device,
                      output=output, skip_existing=not rerun)
    rows = [{"unit": u.label, "status": "skipped (result exists)"} for u in plan.done]
    echo(f"sweep: {len(plan.units) + len(plan.done)} units, {len(plan.done)} already done, "
         f"{len(plan.units)} to run with the {executor} executor")
    if dry_run or not plan.units:
        return rows + [{"unit": u.label, "status": "planned", "command": " ".join(u.argv()[1:])} for u in plan.units]
    units = plan.units
    log_dir = Path(output) / ".sweep" / executor
    if executor == "local":
        rows += run_local(units, jobs=jobs, log_dir=log_dir, echo=echo, **executor_options)
    elif executor == "slurm":
        rows += run_slurm(units, jobs=jobs, log_dir=log_dir, echo=echo, **executor_options)
    else:
        rows += run_ray(units, echo=echo, **executor_options)
    return rows
