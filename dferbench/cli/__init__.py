"""The ``dferbench`` command line. Click code only: each command calls :mod:`dferbench.api` (or a
maintainer tool); the commands live by group in this package's modules."""

from __future__ import annotations

from dferbench.cli import bench, data, plugins, report, run, sweep  # noqa: F401 (each adds its commands)
from dferbench.cli.group import cli
from dferbench.cli.predict import predict
from dferbench.cli.weights import weights

cli.add_command(weights)
cli.add_command(predict)

__all__ = ["cli", "main"]


from dferbench.cli.weights import weights as _weights  # noqa: E402  (its own module)

cli.add_command(_weights)

from dferbench.cli.predict import predict as _predict  # noqa: E402

cli.add_command(_predict)


def main() -> None:
    cli(prog_name="dferbench")


if __name__ == "__main__":
    main()
