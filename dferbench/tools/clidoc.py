"""Render every command's ``--help`` into docs/cli.md (``python -m dferbench.tools.clidoc``)."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from dferbench.cli import cli

DOC = Path(__file__).resolve().parents[2] / "docs" / "cli.md"


def _walk(command: click.Command, path: list[str]):
    yield path, command
    if isinstance(command, click.Group):
        ctx = click.Context(command, info_name=" ".join(path))
        for name in command.list_commands(ctx):  # plugin-registered commands too
            yield from _walk(command.get_command(ctx, name), path + [name])


def render() -> str:
    parts = ["# Command-line reference", "", "Generated from `--help` by `python -m dferbench.tools.clidoc`; "
             "`tests/test_docs.py` fails when it is stale.", ""]
    for path, command in _walk(cli, ["dferbench"]):
        with click.Context(command, info_name=" ".join(path), terminal_width=100, max_content_width=100,
                           help_option_names=["-h", "--help"]) as ctx:
            text = command.get_help(ctx)
        parts += [f"## {' '.join(path)}", "", "```text", text, "```", ""]
    return "\n".join(parts)


if __name__ == "__main__":
    DOC.parent.mkdir(exist_ok=True)
    DOC.write_text(render())
    print(f"wrote {DOC}", file=sys.stderr)
