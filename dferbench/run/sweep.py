"""Sweeps: every (model, dataset, fold, seed) unit of a comparison, spread over processes,
a SLURM cluster or a Ray cluster.

Each unit is exactly what ``dferbench run --model M --dataset D --folds F --seeds S`` does
(:func:`run_unit` calls :func:`dferbench.run.runner.run_plan` with one fold and one seed), so
it writes its own result file in the usual place: resume (units whose result exists with
the same config hash are skipped before anything is submitted) and ``dferbench
leaderboard`` work the same whatever ran the units.

Executors:

* ``local``: ``jobs`` concurrent ``python -m dferbench run`` subprocesses; with ``gpus``
  each job slot is pinned to one GPU (``CUDA_VISIBLE_DEVICES``).
* ``slurm``: one submitit job array (``pip install 'dferbench[slurm]'``); at most
  ``jobs`` array tasks run at once; a preempted or timed-out task is requeued and its
  unit resumes after its last finished epoch (:class:`RequeuedUnit`). ``cluster="local"``
  runs the array on this machine (what the tests do).
* ``ray``: one Ray task per unit (``pip install 'dferbench[ray]'``) on the cluster that
  ``ray.init(address)`` joins, or a local Ray instance; a task whose worker or node
  dies runs again and resumes the same way.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
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
    output: str = "runs"
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
               config: str | None = None, device: str | None = None, output: str | Path = "runs",
               skip_existing: bool = True) -> SweepPlan:
    """The product models x datasets x folds x seeds, validated before anything runs.

    Model names may be ``all`` or ``suite:NAME`` (expanded per dataset). Folds default to
    every fold of each dataset, seeds to each model's preset.
    """
    from dferbench import api
    from dferbench.plugin import manager as plugins
    from dferbench.run import runner
    from dferbench.run.outputs import check_output
    from dferbench.run.results import UnitKey, load_result

    # Absolute: a Ray worker or a compute node resolves relative paths in its own directory.
    output = check_output(output).resolve()
    config = str(Path(config).resolve()) if config else None
    result = SweepPlan()
    seen: set[tuple[str, str, int, int]] = set()
    for dataset in datasets:
        dataset_folds: list[int] | None = None
        for model_arg in models:
            for model, extra in api.expand(model_arg, dataset):
                unit_overrides = tuple(extra) + tuple(overrides)
                plan = runner.plan(model, dataset, config_file=config, overrides=list(unit_overrides),
                                   folds=folds, seeds=seeds, device=device)
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
    from dferbench.run import runner

    start = time.perf_counter()
    plan = runner.plan(unit.model, unit.dataset, config_file=unit.config, overrides=list(unit.overrides),
                       folds=[unit.fold], seeds=[unit.seed], device=unit.device)
    results = runner.run_plan(plan, output=unit.output, echo=lambda m: print(m, file=sys.stderr, flush=True),
                              progress=False, skip_existing=not unit.rerun)
    if not results:  # another run holds its lock
        return {"unit": unit.label, "status": "left to the run that holds it"}
    r = results[0]
    return {"unit": unit.label, "status": "done", "uar": r["uar"], "war": r["war"],
            "seconds": round(time.perf_counter() - start, 1)}


class RequeuedUnit:
    """:func:`run_unit` as a submitit job that SLURM may preempt or time out.

    Before either, SLURM sends the signal submitit asks for (USR2); submitit then calls
    :meth:`checkpoint` and requeues the job with what it returns: the same unit, which
    resumes from the training state of its last finished epoch (the contract of
    ``submitit.helpers.Checkpointable``, without importing submitit where it is not
    used). A job that SLURM requeues without the signal resumes the same way."""

    def __call__(self, unit: Unit) -> dict[str, Any]:
        return run_unit(unit)

    def checkpoint(self, unit: Unit) -> Any:
        from submitit.helpers import DelayedSubmission

        return DelayedSubmission(RequeuedUnit(), unit)


def with_workers(unit: Unit, workers: int) -> Unit:
    """``unit`` with ``data.workers=workers`` unless its overrides set the workers: a unit
    that shares a machine with others takes its share of the CPUs, not all of them."""
    if any(o.startswith("data.workers=") for o in unit.overrides):
        return unit
    return replace(unit, overrides=unit.overrides + (f"data.workers={max(0, workers)}",))


def _failure(unit: Unit, message: str) -> dict[str, Any]:
    return {"unit": unit.label, "status": "failed", "error": message.strip().splitlines()[-1] if message.strip() else ""}


def run_local(units: list[Unit], *, jobs: int = 1, gpus: list[str] | None = None, log_dir: Path,
              echo: Callable[[str], None] = print) -> list[dict[str, Any]]:
    """``jobs`` concurrent ``dferbench run`` subprocesses; slot ``k`` uses ``gpus[k % len(gpus)]``.
    On GPUs each unit gets ``cpus / jobs - 1`` DataLoader workers (unless set)."""
    log_dir.mkdir(parents=True, exist_ok=True)
    if gpus and jobs > 1:
        units = [with_workers(u, _cpus() // jobs - 1) for u in units]
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
    submitted = executor.map_array(RequeuedUnit(), units)
    echo(f"submitted {len(submitted)} units as {executor.cluster} job array "
         f"{submitted[0].job_id.split('_')[0] if submitted else '-'} (logs in {log_dir})")
    if not wait:
        record_in_flight(log_dir, {u.slug: j.job_id for u, j in zip(units, submitted)})
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


def record_in_flight(log_dir: Path, jobs: dict[str, str]) -> None:
    """Remember which SLURM job runs which unit, for the next sweep of the same units."""
    import json

    from dferbench.run.results import write_atomic

    path = log_dir / "jobs.json"
    known = json.loads(path.read_text()) if path.is_file() else {}
    write_atomic(path, json.dumps({**known, **jobs}, indent=1, sort_keys=True) + "\n")


def slurm_in_flight(log_dir: Path) -> dict[str, str]:
    """Unit slug -> job id of the units submitted earlier (``--no-wait``) whose job SLURM
    still lists as pending or running; empty where ``squeue`` cannot be asked."""
    import getpass
    import json

    path = log_dir / "jobs.json"
    if not path.is_file():
        return {}
    try:
        proc = subprocess.run(["squeue", "--noheader", "--array", "--format=%i", f"--user={getpass.getuser()}"],
                              capture_output=True, text=True, timeout=60)
    except (OSError, subprocess.TimeoutExpired):
        return {}
    if proc.returncode != 0:
        return {}
    queued = set(proc.stdout.split())
    return {slug: job for slug, job in json.loads(path.read_text()).items() if job in queued}


def _cpus() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - macOS
        return os.cpu_count() or 1


def _cuda_available() -> bool:
    import torch

    return torch.cuda.is_available()


def run_ray(units: list[Unit], *, address: str | None = None, num_cpus: int | None = None,
            gpus_per_task: float = 0, cpus_per_task: float = 1, gpus_required: bool = False,
            echo: Callable[[str], None] = print) -> list[dict[str, Any]]:
    """One Ray task per unit, on the cluster at ``address`` or a local Ray instance.

    Tasks ask for ``gpus_per_task`` GPUs (Ray then sets ``CUDA_VISIBLE_DEVICES``) and
    ``cpus_per_task`` CPUs (DataLoader workers: one fewer); a request no node can meet is
    an error, not a sweep that waits for ever. On a cluster without GPUs the units run on
    CPUs unless ``gpus_required``. ``DFERBENCH_*`` variables travel with the tasks.
    """
    try:
        import ray
    except ImportError:
        raise DferbenchError("the ray executor needs ray: pip install 'dferbench[ray]'") from None
    started = False
    if not ray.is_initialized():
        kwargs: dict[str, Any] = {"include_dashboard": False, "log_to_driver": False}
        if address:
            kwargs["address"] = address
        elif num_cpus:  # a sized instance of our own, even where a Ray cluster already runs here
            kwargs.update(address="local", num_cpus=num_cpus)
        ray.init(**kwargs)
        started = True
    try:
        gpus_per_task = _feasible_ray_request(ray.nodes(), gpus_per_task, cpus_per_task, gpus_required, echo)
        if gpus_per_task:
            units = [with_workers(u, int(cpus_per_task) - 1) for u in units]
        env = {k: v for k, v in os.environ.items() if k.startswith("DFERBENCH_")}
        # A task whose worker or node dies (a preempted spot node) runs again and resumes
        # from its unit's training state; an error raised by the unit is not retried.
        options: dict[str, Any] = {"num_cpus": cpus_per_task, "num_gpus": gpus_per_task, "max_retries": 3}
        if env:
            options["runtime_env"] = {"env_vars": env}
        task = ray.remote(**options)(run_unit)
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


def _feasible_ray_request(nodes: list[dict[str, Any]], gpus: float, cpus: float, gpus_required: bool,
                          echo: Callable[[str], None]) -> float:
    """The GPUs per task to ask for, after checking that some live node can run a task."""
    alive = [n.get("Resources", {}) for n in nodes if n.get("Alive")]
    most_gpus = max((r.get("GPU", 0) for r in alive), default=0)
    most_cpus = max((r.get("CPU", 0) for r in alive), default=0)
    if gpus and not most_gpus and not gpus_required:
        echo("note  the Ray cluster has no GPU: the units run on CPUs")
        gpus = 0
    if gpus > most_gpus:
        raise DferbenchError(f"ray: no node has {gpus:g} GPU(s) for one task (at most {most_gpus:g}); "
                             "lower --gpus-per-task or add GPU nodes")
    if cpus > most_cpus:
        raise DferbenchError(f"ray: no node has {cpus:g} CPUs for one task (at most {most_cpus:g}); "
                             "lower --cpus-per-task")
    return gpus


def sweep(models: list[str], datasets: list[str], *, folds: list[int] | None = None, seeds: list[int] | None = None,
          overrides: list[str] | tuple[str, ...] = (), config: str | None = None, device: str | None = None,
          output: str | Path = "runs", executor: str = "local", jobs: int = 1, rerun: bool = False,
          dry_run: bool = False, echo: Callable[[str], None] = print, **executor_options: Any) -> list[dict[str, Any]]:
    """Plan the units, skip finished ones, run the rest with ``executor``; one row per unit."""
    if executor not in EXECUTORS:
        raise DferbenchError(f"unknown executor {executor!r}; valid: {', '.join(EXECUTORS)}")
    plan = plan_sweep(models, datasets, folds=folds, seeds=seeds, overrides=overrides, config=config, device=device,
                      output=output, skip_existing=not rerun)
    rows = [{"unit": u.label, "status": "skipped (result exists)"} for u in plan.done]
    log_dir = Path(output) / ".sweep" / executor
    units = plan.units
    if executor == "slurm" and not rerun:  # units of an earlier --no-wait sweep still queued or running
        in_flight = slurm_in_flight(log_dir)
        rows += [{"unit": u.label, "status": f"in flight (job {in_flight[u.slug]})"}
                 for u in units if u.slug in in_flight]
        units = [u for u in units if u.slug not in in_flight]
    echo(f"sweep: {len(plan.units) + len(plan.done)} units, {len(plan.done)} already done, "
         f"{len(plan.units) - len(units)} in flight, {len(units)} to run with the {executor} executor")
    if dry_run or not units:
        return rows + [{"unit": u.label, "status": "planned", "command": " ".join(u.argv()[1:])} for u in units]
    if executor == "local":
        rows += run_local(units, jobs=jobs, log_dir=log_dir, echo=echo, **executor_options)
    elif executor == "slurm":
        rows += run_slurm(units, jobs=jobs, log_dir=log_dir, echo=echo, **executor_options)
    else:
        rows += run_ray(units, echo=echo, **executor_options)
    return rows
