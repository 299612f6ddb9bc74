"""The docs cannot drift: every hook is documented with its exact signature."""

import re
from pathlib import Path

from dferbench.plugin import hookspecs
from dferbench.plugin.manager import pm

ROOT = Path(__file__).resolve().parents[1]


def test_every_hook_is_documented_with_its_signature():
    text = (ROOT / "CONTRIBUTING.md").read_text()
    documented = set(re.findall(r"^### (dferbench_\w+\([^)]*\))$", text, flags=re.M))
    expected = {f"{name}({', '.join(getattr(pm.hook, name).spec.argnames)})"
                for name in dir(hookspecs) if name.startswith("dferbench_")}
    assert documented == expected


def test_every_register_signature_is_documented_under_its_hook():
    from dferbench.plugin.registration import KINDS, signature_text

    text = (ROOT / "CONTRIBUTING.md").read_text()
    sections = dict(re.findall(r"^### (dferbench_\w+)\(register\)$(.*?)(?=^##)", text, flags=re.M | re.S))
    for kind, (_, _, hook) in KINDS.items():
        assert f"`{signature_text(kind)}`" in sections[hook], f"{hook}: document `{signature_text(kind)}`"


def test_readme_shows_the_two_commands():
    readme = (ROOT / "README.md").read_text()
    assert "make run" in readme and "make test" in readme


def test_cli_reference_is_current():
    from dferbench.tools import clidoc

    assert (ROOT / "docs" / "cli.md").read_text() == clidoc.render(), "run `python -m dferbench.tools.clidoc`"
