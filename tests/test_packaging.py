"""The explicit package list in pyproject.toml names every package folder, so a wheel has them all."""

import sys
from pathlib import Path

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

ROOT = Path(__file__).resolve().parents[1]


def test_every_package_folder_is_listed():
    listed = set(tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"])
    found = set()
    for top, name in (("dferbench", "dferbench"), ("plugins", "dferbench_plugins")):
        for init in (ROOT / top).rglob("*.py"):
            folder = init.parent.relative_to(ROOT / top)
            if "__pycache__" in folder.parts or any(p in ("templates", "static") for p in folder.parts):
                continue
            found.add(".".join((name, *folder.parts)))
    assert found == listed
