"""The ``dferbench`` group: plugin commands, one-line errors with the shared exit codes, ``-h``."""

from __future__ import annotations

import sys
from typing import Any, Callable

import click

from dferbench import __version__
from dferbench.errors import DferbenchError, Terminated, storage_error

CONTEXT = {"help_option_names": ["-h", "--help"], "max_content_width": 100}


def ints(text: str | None, option: str) -> list[int] | None:
    """``--option 1,2,3`` as integers; None when the option was not given."""
    if text is None:
        return None
    parts = [t for t in text.replace(" ", "").split(",") if t]
    if not parts:
        raise DferbenchError(f"{option} is empty: give comma-separated integers like 1,2,3, or leave {option} out")
    try:
        return [int(t) for t in parts]
    except ValueError:
        raise DferbenchError(f"{option} expects comma-separated integers like 1,2,3, got {text!r}") from None


def unit_options(command: Callable[..., Any]) -> Callable[..., Any]:
    """The options of every command that runs (fold, seed) units: settings, units, output, device."""
    options = [
        click.option("--config", "config_file", type=click.Path(dir_okay=False), help="TOML file overriding the preset."),
        click.option("--set", "overrides", multiple=True, metavar="SECTION.KEY=VALUE",
                     help="Override one setting, e.g. --set train.epochs=5 (repeatable)."),
        click.option("--folds", help="Comma-separated folds (default: every fold)."),
        click.option("--seeds", help="Comma-separated seeds (default: the preset's)."),
        click.option("--output", "-o", default="runs", show_default=True, type=click.Path(file_okay=False),
                     help="Directory for result files."),
        click.option("--device", help="cpu, cuda, cuda:1 ... (default: cuda if available)."),
    ]
    for option in reversed(options):
        command = option(command)
    return command


def _fail(message: str, exit_code: int, exc: BaseException) -> click.ClickException:
    """``message`` as click's one-line error with ``exit_code``; under DFERBENCH_DEBUG=1 the
    traceback of ``exc`` is printed first."""
    from dferbench.plugin.boundary import debug

    if debug():
        import traceback

        traceback.print_exception(exc, file=sys.stderr)
    error = click.ClickException(message)
    error.exit_code = exit_code
    return error


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
    """Adds the commands plugins register; turns errors and interruptions into one line and
    the exit status of :mod:`dferbench.errors` (with the traceback too under DFERBENCH_DEBUG=1)."""

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
        except click.UsageError as exc:  # one line too, with where to look
            where = exc.ctx.command_path if exc.ctx else ctx.command_path
            raise _fail(f"{exc.format_message()} (see `{where} -h`)", exc.exit_code, exc) from None
        except DferbenchError as exc:
            raise _fail(str(exc), exc.exit_code, exc) from None
        except OSError as exc:
            error = storage_error(exc)
            if error is None:
                raise
            raise _fail(str(error), error.exit_code, exc) from None
        except (KeyboardInterrupt, Terminated) as exc:
            what, code = ("interrupted", 130) if isinstance(exc, KeyboardInterrupt) else ("terminated (SIGTERM)", 143)
            kept = getattr(exc, "finished_units", None)
            if kept is not None:
                what += f"; {kept} finished units kept; rerun the same command to resume"
            click.echo(what, err=True)
            ctx.exit(code)


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
      dferbench leaderboard                       Markdown tables from runs/
    Each (model, dataset, fold, seed) unit writes runs/<dataset>/<run>/foldK-seedS.json;
    a rerun skips finished units, so an interrupted run resumes where it stopped.
    Exit status: 0 done, 1 some units failed, 2 bad usage or settings, 130 Ctrl-C, 143 SIGTERM.
    """
