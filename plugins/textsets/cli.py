"""The text-set plugin's command: write descriptor sentences with a language model."""

from __future__ import annotations

from pathlib import Path

import click


@click.command(name="describe")
@click.option("--classes", required=True, help="Comma-separated class names, e.g. happiness,sadness,anger.")
@click.option("--endpoint", required=True, help="OpenAI-compatible API base URL, e.g. http://localhost:8000/v1.")
@click.option("--model", "llm", required=True, help="Model name the endpoint serves.")
@click.option("--output", "-o", default="descriptors.toml", show_default=True, type=click.Path(dir_okay=False),
              help="Descriptor file to write; use it with --set model.text=file:PATH.")
@click.option("--api-key", envvar="OPENAI_API_KEY", help="Bearer token (default: $OPENAI_API_KEY).")
def describe_command(classes, endpoint, llm, output, api_key) -> None:
    """Write one descriptor sentence per class by asking a language model, as the paper did."""
    from dferbench_plugins.textsets import describe as d

    names = [c.strip() for c in classes.split(",") if c.strip()]
    found = d.describe(names, endpoint, llm, api_key=api_key)
    d.write_descriptor_file(Path(output), found, endpoint=endpoint, model=llm)
    for c, text in found.items():
        click.echo(f"{c}: {text}")
    click.echo(f"wrote {output}")
