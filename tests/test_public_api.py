"""The public API: what it exports, that the built-in plugins use nothing else, that the core
never reaches into a plugin, and that importing it stays cheap."""

import ast
import inspect
import re
import subprocess
import sys
from pathlib import Path

import pytest

import dferbench

ROOT = Path(__file__).resolve().parents[1]
PUBLIC_MODULES = {"dferbench", "dferbench.api", "dferbench.testing"}


def imports(path: Path):
    """``(line, module, names)`` of every import statement in ``path`` (names: None for ``import x``)."""
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield node.lineno, alias.name, None
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            yield node.lineno, node.module, [alias.name for alias in node.names]


def test_every_public_name_resolves_and_has_a_docstring():
    for name in dferbench.__all__:
        value = getattr(dferbench, name)
        if name == "__version__" or not (callable(value) or inspect.ismodule(value)):
            continue  # constants are documented in CONTRIBUTING.md
        own = vars(value).get("__doc__") if inspect.isclass(value) else inspect.getdoc(value)
        assert own and not own.startswith(f"{name}("), f"dferbench.{name} has no docstring of its own"


def test_the_builtin_plugins_import_only_public_names():
    public = set(dferbench.__all__)
    problems = []
    for path in sorted((ROOT / "plugins").rglob("*.py")):
        own = "dferbench_plugins." + path.relative_to(ROOT / "plugins").parts[0]
        for line, module, names in imports(path):
            where = f"{path.relative_to(ROOT)}:{line}"
            if module == "dferbench" and names is not None:
                problems += [f"{where}: dferbench.{n} is not public" for n in names if n not in public]
            elif module.startswith("dferbench.") or (module == "dferbench" and names is None):
                if module not in PUBLIC_MODULES:
                    problems.append(f"{where}: imports {module}, which is internal (use `from dferbench import ...`)")
            elif module.startswith("dferbench_plugins") and not (module == own or module.startswith(own + ".")):
                problems.append(f"{where}: imports {module}, another plugin's module")
    assert not problems, "\n".join(problems)


def test_the_core_never_imports_a_plugin():
    problems = [f"{path.relative_to(ROOT)}:{line}: imports {module}"
                for path in sorted((ROOT / "dferbench").rglob("*.py"))
                for line, module, _ in imports(path) if module.split(".")[0] == "dferbench_plugins"]
    assert not problems, "\n".join(problems)


def test_the_core_names_plugin_modules_only_to_register_them():
    allowed = ROOT / "dferbench" / "plugin" / "manager.py"  # DEFAULT_PLUGINS
    named = [f"{p.relative_to(ROOT)}:{i}" for p in sorted((ROOT / "dferbench").rglob("*.py")) if p != allowed
             for i, text in enumerate(p.read_text().splitlines(), 1) if "dferbench_plugins" in text]
    assert not named, "\n".join(named)


def test_contributing_lists_every_public_name():
    text = (ROOT / "CONTRIBUTING.md").read_text()
    listed = set(re.findall(r"^\| `([A-Za-z_][\w.]*)`", text, flags=re.M))
    missing = [n for n in dferbench.__all__ if n != "__version__" and n not in listed]
    assert not missing, f"CONTRIBUTING.md's public API table lacks {missing}"


def test_importing_dferbench_and_its_hook_marker_loads_no_torch():
    code = ("import sys, dferbench; from dferbench import hookimpl, ClipRecord, DferbenchError; "
            "from dferbench.plugin import manager; manager.models(); print('torch' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.stdout.strip() == "False", out.stderr


def test_unknown_public_name_is_an_attribute_error():
    with pytest.raises(AttributeError, match="no attribute 'BatchPlan'"):
        dferbench.BatchPlan  # internal: not exported
