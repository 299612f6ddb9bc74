"""The ``dferbench`` group: plugin commands, one-line errors, ``-h``."""

from __future__ import annotations

import sys

import click

from dferbench import __version__
from dferbench.errors import DferbenchError

CONTEXT = {"help_option_names": ["-h", "--help"], "max_content_width": 100}


def ints(text: str | None) -> list[int] | None:
    if not text:
        return None
    try:
        return [int(t) for t in text.replace(" ", "").split(",") if t]
    except ValueError:
        raise click.BadParameter(f"expected comma-separated integers like 1,2,3, got {text!r}") from None


def plugin_commands(group: str, taken: set[str]) -> dict[str, click.Command]:
    """The commands plugins registered for ``group`` ("" = top level), less clashing names."""
    from dferbench.plugin import manager

    found: dict[str, click.Command] = {}
    for spec in manager.commands():
        if spec.group != group:
            continue
        if spec.name in taken or spec.name in found:
            click.echo(f"warning: command {spec.name!r} of {spec.plugin} clashes with another of that name; "
                       "skipped", err=True)
            continue
        found[spec.name] = spec.command
    return found


class Group(click.Group):
    """Adds the commands plugins register; turns DferbenchError into one clear line and exit status 2
    (with the traceback too under DFERBENCH_DEBUG=1)."""

    _plugin_commands: dict[str, click.Command] | None = None
    plugin_group = ""

    def plugin_commands(self) -> dict[str, click.Command]:
        if self._plugin_commands is None:
            self._plugin_commands = plugin_commands(self.plugin_group, set(self.commands))
        return self._plugin_commands

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(set(super().list_commands(ctx)) | set(self.plugin_commands()))

    def get_command(self, ctx: click.Context, name: str) -> click.Command | None:
        return super().get_command(ctx, name) or self.plugin_commands().get(name)

    def invoke(self, ctx: click.Context):
        try:
            return super().invoke(ctx)
        except DferbenchError as exc:
            from dferbench.plugin.boundary import debug

            if debug():
                import traceback

                traceback.print_exception(exc, file=sys.stderr)
            error = click.ClickException(str(exc))
            error.exit_code = 2  # a usage or settings error (HELPERS' shared exit codes)
            raise error from None


class BenchGroup(Group):
    plugin_group = "bench"


@click.group(cls=Group, context_settings=CONTEXT)
@click.version_option(__version__, prog_name="dferbench")
def cli() -> None:
    """Benchmark dynamic facial expression recognition with vision-language models.

    \b
    Typical session:
      dferbench list models                       what can run
      dferbench run --model zeroshot-clip --dataset synthetic
      dferbench run --model dferclip --dataset mafw --set data.root=/data/MAFW
      dferbench leaderboard                       Markdown tables from results/
    Each (model, dataset, fold, seed) unit writes results/<dataset>/<run>/foldK-seedS.json;
    a rerun skips finished units, so an interrupted run resumes where it stopped.
    """
