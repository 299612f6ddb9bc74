"""CONTRIBUTING.md's complete plugin is what `dferbench new-plugin` writes (whose package
tests/test_new_plugin.py installs and runs), word for word."""

import re
from pathlib import Path

from dferbench import api

ROOT = Path(__file__).resolve().parents[1]


def test_the_example_plugin_is_what_new_plugin_writes(tmp_path):
    text = (ROOT / "CONTRIBUTING.md").read_text()
    blocks = re.findall(r"<!-- file: ([^ ]+) -->\n```\w*\n(.*?)```", text, flags=re.S)
    package = tmp_path / "dferbench-mylab"
    written = {p.relative_to(tmp_path).as_posix(): p for p in api.new_plugin(package)}
    assert [path.split("/", 1)[1] for path, _ in blocks] == [
        "pyproject.toml", "dferbench_mylab/__init__.py", "dferbench_mylab/data.py", "dferbench_mylab/model.py",
        "tests/test_plugin.py"]
    for path, body in blocks:
        assert written[path].read_text() == body, f"CONTRIBUTING.md's {path} differs from what new-plugin writes"
    assert {p for p in written if p.endswith(".py")} <= {p for p, _ in blocks}
