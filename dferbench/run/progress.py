"""Progress bars that switch themselves off when nobody is watching (no TTY, CI)."""

from __future__ import annotations

import os
import sys
from typing import Iterable, TypeVar

from tqdm.auto import tqdm

T = TypeVar("T")


def progress_enabled() -> bool:
    if os.environ.get("CI") or os.environ.get("DFERBENCH_NO_PROGRESS"):
        return False
    return sys.stderr.isatty()


def progress(iterable: Iterable[T], *, desc: str, total: int | None = None, enabled: bool | None = None,
             leave: bool = False) -> Iterable[T]:
    if enabled is None:
        enabled = progress_enabled()
    return tqdm(iterable, desc=desc, total=total, disable=not enabled, leave=leave, dynamic_ncols=True)
