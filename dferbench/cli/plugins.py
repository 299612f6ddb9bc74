"""``dferbench plugins``, ``list`` and ``new-plugin``: what is installed and registered, and a new plugin."""

from __future__ import annotations


import click

from dferbench.cli.group import cli


@cli.command(name="plugins")
def plugins_cmd() -> None:
    """List loaded plugins, their distributions and versions, and the hooks they implement."""
    from tabulate import tabulate

    from dferbench.plugin import manager as plugins

    rows = [[p["name"], p["distribution"], p["version"], ", ".join(p["hooks"])] for p in plugins.plugin_table()]
    click.echo(tabulate(rows, headers=["plugin", "distribution", "version", "hooks"]))
    for failure in plugins.load_failures:
        click.echo(f"failed: {failure}", err=True)


@cli.command(name="new-plugin")
@click.argument("directory", type=click.Path(file_okay=False))
@click.option("--name", help="Plugin name (default: the folder's name); the distribution is dferbench-NAME.")
def new_plugin_cmd(directory, name) -> None:
    """Write a complete plugin package into DIRECTORY: a dataset, a model, a text set, tests, a README.

    \b
    Example:
      dferbench new-plugin mylab && pip install -e mylab && pytest mylab
    """
    from dferbench import api

    for path in api.new_plugin(directory, name):
        click.echo(f"wrote {path}")


@cli.command(name="list")
@click.argument("what", type=click.Choice(["models", "datasets", "prompts", "suites"]))
def list_cmd(what) -> None:
    """List registered models, datasets, prompt text sets or suites with one-line descriptions."""
    from tabulate import tabulate

    from dferbench import api
    from dferbench.plugin import manager as plugins

    if what == "suites":
        click.echo(tabulate(sorted(api.suites().items()), headers=["name", "description"]))
        return
    registry = {"models": plugins.models, "datasets": plugins.datasets, "prompts": plugins.prompts}[what]()
    rows = [[name, spec.plugin.name, spec.description] for name, spec in sorted(registry.items())]
    click.echo(tabulate(rows, headers=["name", "plugin", "description"]))
