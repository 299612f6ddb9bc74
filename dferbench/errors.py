"""Errors a user can act on: the CLI prints them as one line, without a traceback.

Exit codes of ``dferbench``: 0 done; 1 some units failed (or a ``--check`` found
something stale); 2 a usage or settings error (:class:`DferbenchError`); 130 interrupted
by Ctrl-C; 143 terminated by SIGTERM (:class:`Terminated`).
"""

from __future__ import annotations

import difflib
import errno
from typing import Any, Iterable


class DferbenchError(Exception):
    """Bad input or state that the user can fix; the message says what and how."""

    exit_code = 2


class PluginError(DferbenchError):
    """A plugin failed to load or registered something invalid."""


class UnitsFailed(DferbenchError):
    """Some units of a run failed (each recorded in its ``foldK-seedS.failed.json``); the
    others finished. ``results`` holds the finished units' results."""

    exit_code = 1

    def __init__(self, message: str, results: list[dict[str, Any]], failed: list[str]):
        super().__init__(message)
        self.results, self.failed = results, failed


class Terminated(BaseException):
    """SIGTERM arrived (a scheduler's preemption or time limit): unwinds like Ctrl-C."""


def unknown_name(kind: str, name: str, valid: Iterable[str]) -> DferbenchError:
    """An error for an unknown registry name, with a "did you mean" when one is close."""
    valid = sorted(valid)
    close = difflib.get_close_matches(name, valid, n=1)
    hint = f" Did you mean {close[0]!r}?" if close else ""
    return DferbenchError(f"unknown {kind} {name!r}.{hint} Valid {kind}s: {', '.join(valid) or '(none)'}")


_STORAGE_ADVICE = {
    errno.ENOSPC: "free some space or write elsewhere (--output)",
    errno.EDQUOT: "free some of your quota or write elsewhere (--output)",
    errno.EROFS: "the file system is read-only: write elsewhere (--output)",
    errno.EACCES: "check its permissions or write elsewhere (--output)",
    errno.EPERM: "check its permissions or write elsewhere (--output)",
}


def storage_error(exc: BaseException) -> DferbenchError | None:
    """A disk-full or permission ``OSError`` as one line naming the path; None for others."""
    if not isinstance(exc, OSError) or exc.errno not in _STORAGE_ADVICE:
        return None
    where = exc.filename if exc.filename is not None else "a file"
    return DferbenchError(f"{where}: {exc.strerror}; {_STORAGE_ADVICE[exc.errno]}")
