"""Unit locks: runs that share an output folder split its units instead of each doing all.

A run takes ``foldK-seedS.lock`` next to a unit's result before it starts the unit
(created with ``O_EXCL``, so exactly one of several runs gets it) and removes it when the
unit ends, however it ends. The lock is JSON: ``host``, ``pid``, ``started`` (UTC, ISO
8601) and ``command``; while the unit runs, a thread touches the file every
:data:`HEARTBEAT_S` seconds. A lock left by a run that died is stale and is broken, with
a message: its process is gone (same host), or its heartbeat stopped more than
:data:`STALE_AFTER_S` seconds ago (any host: a preempted job on another node). A lock
still held when the process exits (Ctrl-C or SIGTERM between taking a lock and starting
its unit) is removed then; signals wait while a lock file is created or removed, so the
file and this process's record of it always agree.
"""

from __future__ import annotations

import atexit
import json
import os
import socket
import sys
import threading
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable

from dferbench.files import signals_deferred

HEARTBEAT_S = 60.0
STALE_AFTER_S = 600.0
UNREADABLE_GRACE_S = 30.0  # a lock being written is empty for an instant; one that stays so is stale
_HELD: dict[Path, dict[str, Any]] = {}  # this process's locks, by path


def _remove(path: Path, holder: dict[str, Any]) -> None:
    """Remove the lock at ``path`` if it is still ``holder``'s (not broken as stale by another run)."""
    with signals_deferred():
        if read_lock(path) == holder:
            path.unlink(missing_ok=True)
        _HELD.pop(path, None)


@atexit.register
def _release_held() -> None:
    for path, holder in list(_HELD.items()):
        if holder["pid"] == os.getpid():  # not in a forked child
            _remove(path, holder)


def read_lock(path: Path) -> dict[str, Any] | None:
    """The holder recorded in a lock file: {} when unreadable, None when there is no lock."""
    try:
        info = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return None
    except (OSError, ValueError):
        return {}
    return info if isinstance(info, dict) else {}


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process
        return True
    return True


def stale_reason(path: Path, holder: dict[str, Any], stale_after: float = STALE_AFTER_S) -> str | None:
    """Why the lock ``holder`` (read from ``path``) is abandoned, or None while it is held."""
    try:
        age = time.time() - path.stat().st_mtime
    except FileNotFoundError:
        return "it is gone"
    if not holder:
        return f"unreadable for {age:.0f} s" if age > UNREADABLE_GRACE_S else None
    host, pid = holder.get("host"), holder.get("pid")
    if host == socket.gethostname() and isinstance(pid, int) and not _alive(pid):
        return f"process {pid} on this host is gone"
    if age > stale_after:
        return f"no heartbeat from {host} pid {pid} for {age / 60:.0f} min"
    return None


def _break(path: Path, holder: dict[str, Any]) -> bool:
    """Remove the stale lock ``holder``; False if another run had replaced it meanwhile."""
    aside = path.with_name(f"{path.name}.{os.getpid()}.stale")
    try:
        os.rename(path, aside)
    except FileNotFoundError:
        return True
    broken = read_lock(aside) == holder
    if not broken:  # a fresh lock taken since we read it: put it back
        try:
            os.link(aside, path)
        except FileExistsError:
            pass
    aside.unlink(missing_ok=True)
    return broken


class UnitLock:
    """A held unit lock; ``release()`` (or leaving the ``with`` block) removes it."""

    def __init__(self, path: Path, holder: dict[str, Any], heartbeat: float):
        self.path, self.holder = path, holder
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._beat, args=(heartbeat,), daemon=True,
                                        name=f"dferbench-lock-{path.name}")
        self._thread.start()

    def _beat(self, interval: float) -> None:
        while not self._stop.wait(interval):
            try:
                os.utime(self.path)
            except OSError:
                return

    def release(self) -> None:
        self._stop.set()
        self._thread.join()
        _remove(self.path, self.holder)

    def __enter__(self) -> UnitLock:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.release()


def acquire(path: Path, *, echo: Callable[[str], None] = print, heartbeat: float = HEARTBEAT_S,
            stale_after: float = STALE_AFTER_S) -> UnitLock | None:
    """Take the lock at ``path``; None while another live run holds it. A stale lock is
    broken (and said). Raises ``OSError`` when the folder cannot be written."""
    path.parent.mkdir(parents=True, exist_ok=True)
    holder = {"host": socket.gethostname(), "pid": os.getpid(),
              "started": datetime.now(timezone.utc).isoformat(timespec="seconds"),
              "command": " ".join([Path(sys.argv[0]).name, *sys.argv[1:]])}
    for _ in range(3):
        if _create(path, holder):
            return UnitLock(path, holder, heartbeat)
        current = read_lock(path)
        if current is None:
            continue
        reason = stale_reason(path, current, stale_after)
        if reason is None:
            return None
        if _break(path, current):
            echo(f"note  broke the stale lock {path} ({reason})")
    return None


def _create(path: Path, holder: dict[str, Any]) -> bool:
    """Create the lock file at ``path`` holding ``holder``; False if one exists."""
    with signals_deferred():
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
        except FileExistsError:
            return False
        _HELD[path] = holder
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as f:
                json.dump(holder, f)
        except BaseException:
            _HELD.pop(path, None)
            path.unlink(missing_ok=True)
            raise
    return True
