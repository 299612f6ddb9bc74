"""The ``dferbench`` command line. Click code only: each command calls :mod:`dferbench.api` (or a
maintainer tool); the commands live by group in this package's modules."""

from __future__ import annotations

import os
import signal

from dferbench.cli import bench, data, plugins, report, robustness, run, sweep  # noqa: F401 (each adds its commands)
from dferbench.cli.group import cli
from dferbench.cli.predict import predict
from dferbench.cli.weights import weights
from dferbench.errors import Terminated

cli.add_command(weights)
cli.add_command(predict)

__all__ = ["cli", "main"]

_MAIN_PID = os.getpid()


def _on_sigterm(signum: int, frame: object) -> None:
    if os.getpid() != _MAIN_PID:  # a forked DataLoader worker: just end
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
        os.kill(os.getpid(), signal.SIGTERM)
        return
    raise Terminated()


def main() -> None:
    signal.signal(signal.SIGTERM, _on_sigterm)  # unwind like Ctrl-C: locks released, temporary files removed
    cli(prog_name="dferbench")


if __name__ == "__main__":
    main()
