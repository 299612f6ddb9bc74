"""Files: written whole or not at all, and TOML read with one clear error."""

from __future__ import annotations

import contextlib
import os
import sys
import tempfile
from pathlib import Path
from typing import Any, Iterator

from dferbench.errors import DferbenchError

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

__all__ = ["replacing", "read_toml", "parse_toml", "tomllib"]


def read_toml(path: str | os.PathLike[str], *, what: str = "file") -> dict[str, Any]:
    """The TOML file ``path`` as a dict; a missing or invalid file is a one-line
    :class:`DferbenchError` that says ``what`` it is (``"config file"``...)."""
    path = Path(path)
    try:
        with path.open("rb") as f:
            return tomllib.load(f)
    except FileNotFoundError:
        raise DferbenchError(f"{what} {path} does not exist") from None
    except tomllib.TOMLDecodeError as exc:
        raise DferbenchError(f"{what} {path} is not valid TOML: {exc}") from None


def parse_toml(text: str, source: str) -> dict[str, Any]:
    """TOML text (already decoded) as a dict; invalid TOML is a :class:`DferbenchError`
    ``"<source> is not valid TOML: ..."``."""
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise DferbenchError(f"{source} is not valid TOML: {exc}") from None


@contextlib.contextmanager
def replacing(path: str | os.PathLike[str]) -> Iterator[Path]:
    """Yield a fresh temporary path next to ``path``; write it, and on leaving the block
    it replaces ``path`` in one step. Readers see the old file or the new one, never part
    of one; an error leaves ``path`` as it was; writers of the same file at the same time
    (the ranks of a ``torchrun`` job caching the same features) each use their own name."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    try:
        yield Path(tmp)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
