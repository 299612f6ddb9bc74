"""The plugin system: hooks, isolation, disabling, strict mode, listing."""

import os
import subprocess
import sys
import textwrap

import pytest
import torch
from click.testing import CliRunner

from dferbench import hookimpl
from dferbench.plugin import hookspecs
from dferbench.plugin import manager as plugins
from dferbench.cli import cli
from dferbench.errors import DferbenchError, PluginError
from dferbench.plugin.manager import pm


def test_every_hook_has_a_test():
    names = [n for n in dir(hookspecs) if n.startswith("dferbench_")]
    assert names, "no hooks found"
    for name in names:
        assert f"test_hook_{name}" in globals(), f"hook {name} has no test_hook_{name}"


def test_hook_dferbench_register_datasets(toy_plugin):
    reg = plugins.datasets()["toy"]
    assert reg.plugin == "undo-toy" and reg.options == {"clips_per_fold": 8}
    data = reg.target({"clips_per_fold": 2})
    assert data.folds == [1, 2, 3] and data.classes == ["low", "mid", "high"]
    assert "synthetic" in plugins.datasets()  # built-ins come through the same hook


def test_hook_dferbench_register_models(toy_plugin):
    reg = plugins.models()["toy-model"]
    assert reg.extra["family"] == "classifier-based"
    assert reg.extra["presets"]["default"]["train"]["epochs"] == 3
    assert "zeroshot-clip" in plugins.models()


def test_hook_dferbench_register_prompts():
    class Texts:
        @hookimpl
        def dferbench_register_prompts(self, register):
            register("shouty", lambda classes: [[c.upper() + "!"] for c in classes], description="loud")

    pm.register(Texts(), name="undo-texts")
    try:
        assert plugins.prompts()["shouty"].target(["joy", "fear"]) == [["JOY!"], ["FEAR!"]]
        assert plugins.prompts()["photo-of"].target(["anger"]) == [["a photo of anger."]]
    finally:
        pm.unregister(name="undo-texts")


def test_hook_dferbench_register_clip_models(tmp_path):
    import json

    import open_clip
    import safetensors.torch

    from dferbench.models.clip import CONFIG_DIR, create_clip

    config = tmp_path / "third-party-tiny.json"
    config.write_text((CONFIG_DIR / "dferbench-test-tiny.json").read_text())
    reference, _ = create_clip("dferbench-test-tiny", None)
    weights = tmp_path / "faces.safetensors"
    safetensors.torch.save_file({k: v.contiguous() for k, v in reference.state_dict().items()}, str(weights))

    class Clip:
        @hookimpl
        def dferbench_register_clip_models(self, register):
            register("third-party-tiny", config=config, weights={"faces-v1": weights}, source="ask the lab")

    pm.register(Clip(), name="undo-clip")
    try:
        model, _ = create_clip("third-party-tiny", "faces-v1")
        assert json.loads(config.read_text()) == open_clip.get_model_config("third-party-tiny")
        assert all(torch.equal(a, b) for a, b in zip(model.state_dict().values(), reference.state_dict().values()))
        weights.unlink()
        with pytest.raises(FileNotFoundError, match="faces.safetensors.*ask the lab"):
            create_clip("third-party-tiny", "faces-v1")
        assert "dferbench-tiny" in plugins.clip_models()  # the built-in comes through the same hook
    finally:
        pm.unregister(name="undo-clip")


def test_hook_dferbench_register_commands():
    import click

    @click.command(name="hello-lab")
    def hello() -> None:
        """Say hello."""
        click.echo("hello from a plugin")

    class Commands:
        @hookimpl
        def dferbench_register_commands(self, register):
            register(hello)

    pm.register(Commands(), name="undo-commands")
    try:
        cli._plugin_commands = None  # the group caches what plugins offered
        res = CliRunner().invoke(cli, ["hello-lab"])
        assert res.exit_code == 0 and "hello from a plugin" in res.output
        assert "hello-lab" in CliRunner().invoke(cli, ["--help"]).output
        assert "pretrain-clip" in CliRunner().invoke(cli, ["--help"]).output  # a built-in plugin's command
    finally:
        pm.unregister(name="undo-commands")
        cli._plugin_commands = None  # the group caches what plugins offered


def test_hook_dferbench_register_face_detectors():
    import numpy as np

    from dferbench.predict.tracking import Box

    class Corner:
        def __init__(self, device="cpu"):
            self.device = device

        def detect(self, frames):
            return [[Box(0, 0, 8, 8, 1.0)] for _ in frames]

    class Detectors:
        @hookimpl
        def dferbench_register_face_detectors(self, register):
            register("corner", Corner, description="the top-left corner")

    pm.register(Detectors(), name="undo-detectors")
    try:
        detector = plugins.get("face detector", "corner").target(device="cpu")
        assert detector.detect(np.zeros((2, 16, 16, 3), np.uint8))[1][0].x1 == 8
        assert {"haar", "mtcnn", "none"} <= set(plugins.face_detectors())  # the built-ins
    finally:
        pm.unregister(name="undo-detectors")


def test_duplicate_names_name_both_plugins(toy_plugin):
    class Clash:
        @hookimpl
        def dferbench_register_datasets(self, register):
            register("toy", lambda o: None)

    pm.register(Clash(), name="undo-clash")
    try:
        with pytest.raises(PluginError, match="dataset 'toy' registered twice: by 'undo-toy' and 'undo-clash'"):
            plugins.datasets()
    finally:
        pm.unregister(name="undo-clash")


def test_a_plugin_failing_inside_a_hook_is_isolated(toy_plugin):
    class Broken:
        @hookimpl
        def dferbench_register_models(self, register):
            raise RuntimeError("boom")

    pm.register(Broken(), name="undo-broken")
    try:
        with pytest.warns(UserWarning, match="plugin 'undo-broken' failed in dferbench_register_models: RuntimeError: boom"):
            assert "toy-model" in plugins.models()
    finally:
        pm.unregister(name="undo-broken")


def test_unknown_names_suggest_the_closest():
    with pytest.raises(DferbenchError, match="unknown model 'zeroshot-clp'. Did you mean 'zeroshot-clip'?"):
        plugins.get("model", "zeroshot-clp")
    with pytest.raises(DferbenchError, match="unknown text set 'descriptor'. Did you mean 'descriptors'?"):
        plugins.get("text set", "descriptor")


def test_cli_lists_plugins_and_registrations():
    runner = CliRunner()
    out = runner.invoke(cli, ["plugins"]).output
    assert "baselines" in out and "dferbench_register_models" in out and "0.1.0" in out
    out = runner.invoke(cli, ["list", "prompts"]).output
    assert "descriptors" in out and "LLM-written" in out


def test_cli_reports_bad_input_in_one_line():
    res = CliRunner().invoke(cli, ["run", "--model", "zeroshot-clp", "--dataset", "synthetic"])
    assert res.exit_code == 2
    assert res.output.strip().splitlines() == [
        "Error: unknown model 'zeroshot-clp'. Did you mean 'zeroshot-clip'? Valid models: "
        + ", ".join(sorted(plugins.models()))
    ]


# Entry-point loading runs in a subprocess: a fake installed distribution on PYTHONPATH.
def make_fake_distribution(root, body):
    (root / "badplug.py").write_text(textwrap.dedent(body))
    info = root / "badplug-9.9.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: badplug\nVersion: 9.9\n")
    (info / "entry_points.txt").write_text("[dferbench]\nbadplug = badplug\n")


def list_models(root, **env):
    environ = {**os.environ, "PYTHONPATH": str(root), **env}
    environ.pop("DFERBENCH_DISABLE_PLUGINS", None)
    environ.update(env)
    return subprocess.run([sys.executable, "-m", "dferbench", "list", "models"], capture_output=True, text=True,
                          env=environ, timeout=120)


def test_broken_entry_point_is_skipped_with_its_distribution_named(tmp_path):
    make_fake_distribution(tmp_path, "raise ImportError('missing dependency xyz')\n")
    res = list_models(tmp_path)
    assert res.returncode == 0 and "zeroshot-clip" in res.stdout
    assert "plugin 'badplug' from distribution 'badplug' failed to load: ImportError: missing dependency xyz" in res.stderr
    strict = list_models(tmp_path, DFERBENCH_STRICT_PLUGINS="1")
    assert strict.returncode != 0 and "DFERBENCH_STRICT_PLUGINS" in strict.stderr
    assert "Traceback" not in strict.stderr


def test_plugins_can_be_disabled_by_name_or_all_third_party(tmp_path):
    make_fake_distribution(tmp_path, """
        from dferbench import hookimpl

        @hookimpl
        def dferbench_register_models(register):
            register("third-party-model", object, description="from badplug")
    """)
    assert "third-party-model" in list_models(tmp_path).stdout
    assert "third-party-model" not in list_models(tmp_path, DFERBENCH_DISABLE_PLUGINS="badplug").stdout
    off = list_models(tmp_path, DFERBENCH_DISABLE_PLUGINS="third-party").stdout
    assert "third-party-model" not in off and "zeroshot-clip" in off
    assert "zeroshot-clip" not in list_models(tmp_path, DFERBENCH_DISABLE_PLUGINS="baselines").stdout


def test_misspelled_hook_fails_at_load(tmp_path):
    make_fake_distribution(tmp_path, """
        from dferbench import hookimpl

        @hookimpl
        def dferbench_register_modles(register):
            pass
    """)
    res = list_models(tmp_path)
    assert "unknown hook 'dferbench_register_modles'" in res.stderr
    assert res.returncode == 0 and "zeroshot-clip" in res.stdout
