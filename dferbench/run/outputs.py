"""A unit's files in the output folder: checks before a unit starts, claiming a unit (its
existing result, its lock), and the record of a unit that failed.

Beside the result ``foldK-seedS.json`` live ``.predictions.csv``, ``.lock`` (who runs it,
:mod:`dferbench.run.locks`), ``.failed.json`` (why it failed, until it finishes) and
``.json.invalid`` (an invalid result moved aside), plus what the method writes on request
(``ModelContext.unit_file``: ``.checkpoint.safetensors``...).
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import traceback
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable

from dferbench.errors import DferbenchError, Terminated, UnitsFailed, storage_error
from dferbench.run import locks
from dferbench.run.results import SCHEMA_VERSION, move_aside, read_result, write_atomic

MIN_FREE_BYTES = 64 * 2**20
"""Free space a unit needs to start: its result and predictions are small, so a disk with
less is about to fill (a checkpoint needs its own size on top)."""


def check_output(output: str | Path | None) -> Path:
    """The output folder as a path; an empty name or an existing file is an error."""
    if output is None or not str(output).strip():
        raise DferbenchError("the output folder is empty (''): give one, e.g. --output runs")
    path = Path(output)
    if path.exists() and not path.is_dir():
        raise DferbenchError(f"output {path} is a file, not a folder: give a folder, e.g. --output runs")
    return path


def check_writable(folder: Path, *, probe: bool = True) -> None:
    """Stop in one line when ``folder`` cannot be written (``probe``: try it) or has less
    than :data:`MIN_FREE_BYTES` free."""
    try:
        folder.mkdir(parents=True, exist_ok=True)
        if probe:
            test = folder / f".dferbench-write-test-{os.getpid()}"
            test.write_bytes(b"")
            test.unlink()
        free = shutil.disk_usage(folder).free
    except OSError as exc:
        raise storage_error(exc) or DferbenchError(f"{folder}: cannot be written ({exc})") from None
    if free < MIN_FREE_BYTES:
        raise DferbenchError(f"{folder}: only {free / 2**20:.0f} MiB free, a unit needs at least "
                             f"{MIN_FREE_BYTES // 2**20} MiB; free some space or write elsewhere (--output)")


def one_line(exc: BaseException) -> str:
    """An exception as one line: the message of a DferbenchError, else ``Type: first line``."""
    text = str(exc).strip().splitlines()
    first = text[0] if text else ""
    return first if isinstance(exc, DferbenchError) else f"{type(exc).__name__}: {first}".rstrip(": ")


def units_failed(results: list[dict[str, Any]], failed: list[str]) -> UnitsFailed:
    """The end-of-run error when units failed: a summary line, the finished results attached."""
    return UnitsFailed(f"{len(results)} units finished, {len(failed)} failed: {'; '.join(failed)}. Each failure "
                       "is recorded in its foldK-seedS.failed.json; rerun the same command to retry them",
                       results, failed)


def run_all(runs: list[Callable[[], list[dict[str, Any]]]]) -> list[dict[str, Any]]:
    """Call each of ``runs`` (each runs units and returns their results) in turn: when units
    fail, the others still run, then :class:`~dferbench.errors.UnitsFailed` is raised with
    every finished unit's result. An interruption counts the finished units."""
    results, failed = [], []
    try:
        for one in runs:
            try:
                results += one()
            except UnitsFailed as exc:
                results += exc.results
                failed += exc.failed
    except (KeyboardInterrupt, Terminated) as exc:
        exc.finished_units = getattr(exc, "finished_units", 0) + len(results)  # type: ignore[union-attr]
        raise
    if failed:
        raise units_failed(results, failed)
    return results


def claim(path: Path, run_hash: str, classes: list[str], skip_existing: bool,
           echo: Callable[[str], None]) -> tuple[str, Any, locks.UnitLock | None]:
    """Decide a unit: ``("done", result, None)`` when a valid result of this config exists,
    ``("busy", holder, None)`` when another run holds its lock, else ``("run", None, lock)``.
    An invalid result is moved aside (and said) under the lock."""
    if skip_existing:
        existing, _ = read_result(path, classes)
        if existing and existing["config_hash"] == run_hash:
            return "done", existing, None
    lock_path = path.with_suffix(".lock")
    try:
        lock = locks.acquire(lock_path, echo=echo)
    except OSError as exc:
        raise storage_error(exc) or exc
    if lock is None:
        return "busy", locks.read_lock(lock_path) or {}, None
    if path.exists():
        existing, problems = read_result(path, classes)
        if problems:
            aside = move_aside(path)
            echo(f"invalid {path}: {problems[0]}; moved to {aside.name}, running the unit again")
        elif skip_existing and existing["config_hash"] == run_hash:  # finished by another run meanwhile
            lock.release()
            return "done", existing, None
    return "run", None, lock


def record_failure(path: Path, unit: dict[str, Any], exc: BaseException) -> Path:
    """Write ``foldK-seedS.failed.json`` beside the result ``path``: ``unit`` (its identifying
    keys), the one-line error, the traceback, the host and the time. Returns its path."""
    failure = path.with_suffix(".failed.json")
    record = {"schema": SCHEMA_VERSION, "status": "failed", **unit, "error": one_line(exc),
              "error_type": type(exc).__name__, "traceback": "".join(traceback.format_exception(exc)),
              "host": socket.gethostname(), "failed_at": datetime.now(timezone.utc).isoformat(timespec="seconds")}
    write_atomic(failure, json.dumps(record, indent=1) + "\n")
    return failure
