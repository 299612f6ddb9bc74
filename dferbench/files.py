"""Files: written whole or not at all, and TOML read with one clear error."""

from __future__ import annotations

import contextlib
import os
import secrets
import signal
import sys
import threading
from pathlib import Path
from typing import Any, Iterator

from dferbench.errors import DferbenchError

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

__all__ = ["replacing", "naming", "signals_deferred", "read_toml", "parse_toml", "tomllib"]


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
    except UnicodeDecodeError as exc:
        raise DferbenchError(f"{what} {path} is not UTF-8 text ({exc.reason} at byte {exc.start}): "
                             "is it a TOML file?") from None
    except OSError as exc:
        raise DferbenchError(f"{what} {path} cannot be read: {exc.strerror}") from None


def parse_toml(text: str, source: str) -> dict[str, Any]:
    """TOML text (already decoded) as a dict; invalid TOML is a :class:`DferbenchError`
    ``"<source> is not valid TOML: ..."``."""
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise DferbenchError(f"{source} is not valid TOML: {exc}") from None


def _create_temporary(path: Path) -> Path:
    """An empty new file next to ``path``, created with the user's umask (mode 0666 less
    the umask, as ``open`` would; ``tempfile.mkstemp`` would make it 0600)."""
    while True:
        tmp = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}.tmp")
        try:
            os.close(os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666))
            return tmp
        except FileExistsError:
            continue


@contextlib.contextmanager
def signals_deferred() -> Iterator[None]:
    """Hold Ctrl-C and SIGTERM back until the block ends: for the steps that create a file
    and record that it must be removed, which an interruption between them would leave behind."""
    if threading.current_thread() is not threading.main_thread() or not hasattr(signal, "pthread_sigmask"):
        yield
        return
    previous = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT, signal.SIGTERM})
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, previous)


@contextlib.contextmanager
def naming(path: str | os.PathLike[str]) -> Iterator[None]:
    """Re-raise an ``OSError`` that names no file (a full disk on ``write``) as one naming
    ``path``, so the user is told where."""
    try:
        yield
    except OSError as exc:
        if exc.filename is None and exc.errno is not None:
            raise OSError(exc.errno, exc.strerror, str(path)) from exc
        raise


@contextlib.contextmanager
def replacing(path: str | os.PathLike[str]) -> Iterator[Path]:
    """Yield a fresh temporary path next to ``path``; write it, and on leaving the block
    it replaces ``path`` in one step. Readers see the old file or the new one, never part
    of one; an error leaves ``path`` as it was; writers of the same file at the same time
    (the ranks of a ``torchrun`` job caching the same features) each use their own name.
    An ``OSError`` that names no file (a full disk on ``write``) is raised naming ``path``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = None
    try:
        with naming(path):
            with signals_deferred():  # an interruption lands after `tmp` is set, not before
                tmp = _create_temporary(path)
            yield tmp
            os.replace(tmp, path)
    except BaseException:
        if tmp is not None:
            tmp.unlink(missing_ok=True)
        raise
