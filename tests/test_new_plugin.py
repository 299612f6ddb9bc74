"""`dferbench new-plugin`: the package it writes works, imported and installed."""

import importlib
import os
import site
import subprocess
import sys
import venv

import pytest
from click.testing import CliRunner

from dferbench import api, testing
from dferbench.cli import cli
from dferbench.errors import DferbenchError


def test_new_plugin_writes_a_package_and_refuses_a_used_folder(tmp_path):
    res = CliRunner().invoke(cli, ["new-plugin", str(tmp_path / "My Lab")])
    assert res.exit_code == 0, res.output
    written = sorted(p.relative_to(tmp_path / "My Lab").as_posix() for p in (tmp_path / "My Lab").rglob("*")
                     if p.is_file())
    assert written == ["README.md", "dferbench_my_lab/__init__.py", "dferbench_my_lab/data.py",
                       "dferbench_my_lab/model.py", "pyproject.toml", "tests/test_plugin.py"]
    pyproject = (tmp_path / "My Lab" / "pyproject.toml").read_text()
    assert 'name = "dferbench-my-lab"' in pyproject and 'my-lab = "dferbench_my_lab"' in pyproject
    assert "{{" not in "".join(p.read_text() for p in (tmp_path / "My Lab").rglob("*.py"))
    with pytest.raises(DferbenchError, match="exists and is not an empty folder"):
        api.new_plugin(tmp_path / "My Lab")
    with pytest.raises(DferbenchError, match="start it with a letter"):
        api.new_plugin(tmp_path / "x", name="42")


def test_the_new_plugin_runs_from_its_folder(tmp_path, monkeypatch):
    api.new_plugin(tmp_path / "lab", name="lab")
    monkeypatch.syspath_prepend(str(tmp_path / "lab"))
    plugin = importlib.import_module("dferbench_lab")
    with testing.registered_plugin(plugin) as name:
        assert name == "undo-dferbench_lab"
        assert testing.build_dataset("lab-clips", clips=8).folds == [1, 2]
        result = testing.run_unit("lab-centroid", "lab-clips", tmp_path / "out", overrides=["data.clips=16"])
        assert result["war"] == 100.0 and result["plugins"]["model"] == name
        assert api.check_data("lab-clips").ok
        assert "lab-faces" in CliRunner().invoke(cli, ["list", "prompts"]).output


def builder() -> str:
    """The folder on sys.path with the newest setuptools: one that builds an editable wheel
    without the network (a venv's bundled setuptools may need the separate `wheel`)."""
    import importlib.metadata

    found = [(dist.version, str(path)) for path in sys.path if path and os.path.isdir(path)
             for dist in importlib.metadata.distributions(path=[path]) if dist.metadata["Name"] == "setuptools"]
    assert found, "no setuptools on sys.path to build the plugin with"
    return max(found, key=lambda f: tuple(int(x) for x in f[0].split(".")[:3] if x.isdigit()))[1]


@pytest.mark.slow
def test_the_new_plugin_passes_its_own_tests_once_installed(tmp_path):
    package = tmp_path / "mylab"
    api.new_plugin(package)
    env_dir = tmp_path / "venv"
    venv.EnvBuilder(with_pip=False).create(env_dir)
    python = env_dir / "bin" / "python"
    # The throwaway venv sees this interpreter's packages (dferbench, torch, pytest, pip), as
    # /work/mkwt's venvs do, and gets only the new plugin installed into it.
    purelib = subprocess.run([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                             capture_output=True, text=True, check=True).stdout.strip()
    parent = "; ".join(f"site.addsitedir({p!r})" for p in site.getsitepackages())
    (env_dir / purelib / "zz_parent.pth").write_text(f"import site, sys; {parent}; sys.path.insert(0, {builder()!r})\n")
    env = {k: v for k, v in os.environ.items() if k not in ("DFERBENCH_DISABLE_PLUGINS", "PYTHONPATH")}
    subprocess.run([str(python), "-m", "pip", "install", "-q", "--no-deps", "--no-build-isolation", "-e",
                    str(package)], check=True, timeout=300, env=env)
    listed = subprocess.run([str(python), "-m", "dferbench", "plugins"], capture_output=True, text=True, env=env,
                            timeout=120)
    assert any(line.split()[:3] == ["mylab", "dferbench-mylab", "0.1.0"] for line in listed.stdout.splitlines()), \
        listed.stdout + listed.stderr
    tests = subprocess.run([str(python), "-m", "pytest", "-q", "-p", "no:cacheprovider", str(package / "tests")],
                           capture_output=True, text=True, env=env, timeout=600, cwd=package)
    assert tests.returncode == 0, tests.stdout[-3000:] + tests.stderr[-3000:]
    assert "4 passed" in tests.stdout
