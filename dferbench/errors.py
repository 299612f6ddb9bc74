"""Errors a user can act on: the CLI prints them as one line, without a traceback."""

from __future__ import annotations

import difflib
from typing import Iterable


class DferbenchError(Exception):
    """Bad input or state that the user can fix; the message says what and how."""


class PluginError(DferbenchError):
    """A plugin failed to load or registered something invalid."""


def unknown_name(kind: str, name: str, valid: Iterable[str]) -> DferbenchError:
    """An error for an unknown registry name, with a "did you mean" when one is close."""
    valid = sorted(valid)
    close = difflib.get_close_matches(name, valid, n=1)
    hint = f" Did you mean {close[0]!r}?" if close else ""
    return DferbenchError(f"unknown {kind} {name!r}.{hint} Valid {kind}s: {', '.join(valid) or '(none)'}")
