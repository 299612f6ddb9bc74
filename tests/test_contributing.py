"""The third-party plugin in CONTRIBUTING.md, installed as a package and run from the CLI."""

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def write_example_package(dest: Path) -> Path:
    text = (ROOT / "CONTRIBUTING.md").read_text()
    blocks = re.findall(r"<!-- file: ([^ ]+) -->\n```\w*\n(.*?)```", text, flags=re.S)
    assert len(blocks) == 2, "CONTRIBUTING.md should hold the plugin's pyproject.toml and module"
    for rel, body in blocks:
        (dest / rel).parent.mkdir(parents=True, exist_ok=True)
        (dest / rel).write_text(body)
    return dest / blocks[0][0].split("/")[0]


@pytest.mark.slow
def test_example_plugin_package_installs_and_runs(tmp_path):
    package = write_example_package(tmp_path / "src")
    site = tmp_path / "site"
    subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--no-build-isolation",
                    "--target", str(site), str(package)], check=True, timeout=300)
    env = {k: v for k, v in os.environ.items() if k != "DFERBENCH_DISABLE_PLUGINS"}
    env["PYTHONPATH"] = str(site)
    dferbench = [sys.executable, "-m", "dferbench"]
    listed = subprocess.run(dferbench + ["list", "models"], capture_output=True, text=True, env=env, timeout=120)
    assert "nearest-centroid" in listed.stdout and "stripes" in listed.stdout
    plugins = subprocess.run(dferbench + ["plugins"], capture_output=True, text=True, env=env, timeout=120)
    assert re.search(r"stripes\s+0\.1\.0\s+dferbench_register_datasets, dferbench_register_models", plugins.stdout)
    out = tmp_path / "results"
    run = subprocess.run(dferbench + ["run", "--model", "nearest-centroid", "--dataset", "stripes", "-o", str(out)],
                         capture_output=True, text=True, env=env, timeout=300)
    assert run.returncode == 0, run.stderr
    assert "| nearest-centroid | classifier-based | no" in run.stdout
    assert "100.00" in run.stdout  # stripes are perfectly separable by mean pixels
    assert (out / "stripes" / "nearest-centroid" / "fold1-seed1.json").exists()
