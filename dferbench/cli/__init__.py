"""The ``dferbench`` command line. Click code only: each command calls :mod:`dferbench.api` (or a
maintainer tool); the commands live by group in this package's modules."""

from __future__ import annotations

from dferbench.cli import bench, data, plugins, report, run, sweep  # noqa: F401 (each adds its commands)
from dferbench.cli.group import cli

__all__ = ["cli", "main"]


def main() -> None:
    cli(prog_name="dferbench")


if __name__ == "__main__":
    main()
