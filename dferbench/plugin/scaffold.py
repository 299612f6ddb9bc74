"""``dferbench new-plugin DIR``: a complete, installable plugin package to start from.

The package (``template/``) offers a dataset, a model and a text set, has its own tests
written with :mod:`dferbench.testing`, a README and a ``pyproject.toml`` with the
``dferbench`` entry point; ``pip install -e DIR && pytest DIR`` passes as written.
"""

from __future__ import annotations

import re
from pathlib import Path

from dferbench.errors import DferbenchError

TEMPLATE = Path(__file__).parent / "template"


def plugin_names(name: str) -> dict[str, str]:
    """``slug`` (registry prefix, entry-point name), ``distribution`` and ``package`` for ``name``."""
    slug = re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-")
    slug = slug.removeprefix("dferbench-") or slug
    if not slug or not slug[0].isalpha():
        raise DferbenchError(f"plugin name {name!r}: start it with a letter, e.g. `dferbench new-plugin mylab`")
    return {"slug": slug, "distribution": f"dferbench-{slug}", "package": f"dferbench_{slug.replace('-', '_')}"}


def new_plugin(directory: str | Path, name: str | None = None) -> list[Path]:
    """Write the plugin package into ``directory`` (new or empty); ``name`` defaults to the
    folder's name. Returns the files written."""
    directory = Path(directory)
    if directory.exists() and (not directory.is_dir() or any(directory.iterdir())):
        raise DferbenchError(f"{directory} exists and is not an empty folder: choose a new one")
    names = plugin_names(name or directory.resolve().name)
    written = []
    for source in sorted(TEMPLATE.rglob("*.tmpl")):
        relative = source.relative_to(TEMPLATE).with_suffix("")
        if relative.parts[0] == "package":
            relative = Path(names["package"], *relative.parts[1:])
        text = source.read_text(encoding="utf-8")
        for key, value in names.items():
            text = text.replace("{{" + key + "}}", value)
        target = directory / relative
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(text, encoding="utf-8")
        written.append(target)
    return written
