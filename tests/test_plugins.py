"""The plugin system: hooks, typed registrations, isolation, clashes, disabling, tracing, listing."""

import dataclasses
import os
import subprocess
import sys
import textwrap

import pytest
import torch
from click.testing import CliRunner

from dferbench import hookimpl
from dferbench.cli import cli
from dferbench.errors import DferbenchError, PluginError
from dferbench.plugin import hookspecs
from dferbench.plugin import manager as plugins
from dferbench.plugin.boundary import PluginFailure
from dferbench.plugin.registration import register_signature
from dferbench.plugin.manager import pm
from dferbench.plugin.specs import (
    ClipModelSpec,
    CommandSpec,
    DatasetSpec,
    FaceDetectorSpec,
    ModelSpec,
    TextSetSpec,
)


def test_every_hook_has_a_test():
    names = [n for n in dir(hookspecs) if n.startswith("dferbench_")]
    assert names, "no hooks found"
    for name in names:
        assert f"test_hook_{name}" in globals(), f"hook {name} has no test_hook_{name}"


@pytest.fixture
def registered():
    """Register throwaway plugin objects for one test; unregister them afterwards."""
    names = []

    def add(plugin, name):
        pm.register(plugin, name=name)
        names.append(name)

    yield add
    for name in names:
        pm.unregister(name=name)


def test_hook_dferbench_register_datasets(toy_plugin, registered):
    spec = plugins.datasets()["toy"]
    assert isinstance(spec, DatasetSpec) and spec.plugin.name == "undo-toy" and spec.options == {"clips_per_fold": 8}
    data = spec.build({"clips_per_fold": 2})
    assert data.folds == [1, 2, 3] and data.classes == ["low", "mid", "high"]
    assert "synthetic" in plugins.datasets()  # built-ins come through the same hook
    assert plugins.datasets()["synthetic"].profile["model"]["clip_model"] == "dferbench-tiny"

    def check(options, report):
        report.add("count_mismatch", "a note from the dataset's own check")

    class Checked:
        @hookimpl
        def dferbench_register_datasets(self, register):
            from conftest import make_toy_dataset

            register("toy-checked", make_toy_dataset, options={"clips_per_fold": 4}, check=check,
                     profile={"data": {"num_frames": 4}})

    registered(Checked(), "undo-checked")
    spec = plugins.datasets()["toy-checked"]
    assert spec.check is check and spec.profile == {"data": {"num_frames": 4}}


def test_hook_dferbench_register_models(toy_plugin):
    spec = plugins.models()["toy-model"]
    assert isinstance(spec, ModelSpec) and spec.family == "classifier-based"
    assert spec.presets["default"]["train"]["epochs"] == 3
    assert "zeroshot-clip" in plugins.models()
    dferclip = plugins.models()["dferclip"]
    assert dferclip.is_temporal({"temporal_depth": 1}) and not dferclip.is_temporal({"temporal_depth": 0})
    assert dferclip.image_size({"clip_model": "dferbench-tiny"}) == 64
    assert dferclip.network and dferclip.optimizer and dferclip.load_checkpoint


def test_hook_dferbench_register_prompts(registered):
    class Texts:
        @hookimpl
        def dferbench_register_prompts(self, register):
            register("shouty", lambda classes: [[c.upper() + "!"] for c in classes], description="loud")
            register("broken", lambda classes: [[]] * len(classes))

    registered(Texts(), "undo-texts")
    assert isinstance(plugins.prompts()["shouty"], TextSetSpec)
    assert plugins.prompts()["shouty"].texts_for(["joy", "fear"]) == [["JOY!"], ["FEAR!"]]
    assert plugins.prompts()["photo-of"].texts_for(["anger"]) == [["a photo of anger."]]
    with pytest.raises(DferbenchError, match="text set 'broken' .*plugin 'undo-texts'.* must return a non-empty"):
        plugins.prompts()["broken"].texts_for(["joy"])


def test_hook_dferbench_register_clip_models(tmp_path, registered):
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

    registered(Clip(), "undo-clip")
    assert isinstance(plugins.clip_models()["third-party-tiny"], ClipModelSpec)
    model, _ = create_clip("third-party-tiny", "faces-v1")
    assert json.loads(config.read_text()) == open_clip.get_model_config("third-party-tiny")
    assert all(torch.equal(a, b) for a, b in zip(model.state_dict().values(), reference.state_dict().values()))
    weights.unlink()
    with pytest.raises(FileNotFoundError, match="faces.safetensors.*ask the lab"):
        create_clip("third-party-tiny", "faces-v1")
    assert "dferbench-tiny" in plugins.clip_models()  # the built-in comes through the same hook


def test_hook_dferbench_register_commands(registered):
    import click

    @click.command(name="hello-lab")
    def hello() -> None:
        """Say hello."""
        click.echo("hello from a plugin")

    @click.command(name="lab-speed")
    def speed() -> None:
        """Time something."""
        click.echo("fast")

    class Commands:
        @hookimpl
        def dferbench_register_commands(self, register):
            register(hello)
            register(speed, group="bench")

    registered(Commands(), "undo-commands")
    for group in (cli, cli.commands["bench"]):
        group._plugin_commands = None  # the groups cache what plugins offered
    try:
        assert all(isinstance(c, CommandSpec) for c in plugins.commands())
        res = CliRunner().invoke(cli, ["hello-lab"])
        assert res.exit_code == 0 and "hello from a plugin" in res.output
        assert "hello-lab" in CliRunner().invoke(cli, ["--help"]).output
        assert CliRunner().invoke(cli, ["bench", "lab-speed"]).output == "fast\n"
        assert "pretrain-clip" in CliRunner().invoke(cli, ["--help"]).output  # a built-in plugin's command
    finally:
        for group in (cli, cli.commands["bench"]):
            group._plugin_commands = None


def test_hook_dferbench_register_face_detectors(registered):
    import numpy as np

    from dferbench import Box

    class Corner:
        def __init__(self, device="cpu"):
            self.device = device

        def detect(self, frames):
            return [[Box(0, 0, 8, 8, 1.0)] for _ in frames]

    class Detectors:
        @hookimpl
        def dferbench_register_face_detectors(self, register):
            register("corner", Corner, description="the top-left corner")

    registered(Detectors(), "undo-detectors")
    spec = plugins.get("face detector", "corner")
    assert isinstance(spec, FaceDetectorSpec) and spec.plugin.name == "undo-detectors"
    detector = spec.build(device="cpu")
    assert detector.detect(np.zeros((2, 16, 16, 3), np.uint8))[1][0].x1 == 8
    assert {"haar", "mtcnn", "none"} <= set(plugins.face_detectors())  # the built-ins


def test_register_signatures_are_the_specs():
    """What hookspecs declares is exactly what a spec holds (plus who registered it)."""
    for kind, spec in [("dataset", DatasetSpec), ("model", ModelSpec), ("text set", TextSetSpec),
                       ("CLIP model", ClipModelSpec), ("face detector", FaceDetectorSpec), ("command", CommandSpec)]:
        declared = list(register_signature(kind).parameters)
        assert declared == [f.name for f in dataclasses.fields(spec) if f.name != "plugin"], kind


def test_registries_are_built_once_per_plugin_set(registered):
    calls = []

    class Counting:
        @hookimpl
        def dferbench_register_datasets(self, register):
            calls.append(1)

    registered(Counting(), "undo-counting")
    for _ in range(3):
        plugins.datasets()
        plugins.get("dataset", "synthetic")
    assert len(calls) == 1
    registered(object(), "undo-other")  # the set of plugins changed: rebuilt once more
    plugins.datasets(), plugins.datasets()
    assert len(calls) == 2


def test_unknown_keyword_is_rejected_naming_the_plugin(registered, monkeypatch):
    class Typo:
        @hookimpl
        def dferbench_register_models(self, register):
            register("typo-model", object, familly="text-based")

    registered(Typo(), "undo-typo")
    with pytest.warns(UserWarning) as caught:
        models = plugins.models()
    message = str(caught[0].message)
    assert "typo-model" not in models and "zeroshot-clip" in models
    assert "plugin 'undo-typo'" in message and "register() of model 'typo-model'" in message
    assert "unexpected keyword argument 'familly'" in message and "\n" not in message
    monkeypatch.setenv("DFERBENCH_STRICT_PLUGINS", "1")
    plugins._cache.clear()
    with pytest.raises(PluginError, match="familly"):
        plugins.models()
    plugins._cache.clear()


@pytest.mark.parametrize("kwargs, problem", [
    ({"name": "has space"}, "invalid name 'has space'"),
    ({"family": "vision"}, "family must be one of"),
    ({"presets": ["dfew"]}, "presets must be a dict"),
    ({"network": "DFERCLIP"}, "network must be callable"),
])
def test_bad_values_are_rejected(registered, kwargs, problem):
    class Bad:
        @hookimpl
        def dferbench_register_models(self, register):
            register(**{"name": "bad-model", "factory": object, **kwargs})

    registered(Bad(), "undo-bad")
    with pytest.warns(UserWarning, match=problem):
        assert "bad-model" not in plugins.models()


def test_a_plugin_failing_inside_a_hook_is_isolated(toy_plugin, registered):
    class Broken:
        @hookimpl
        def dferbench_register_models(self, register):
            register("half-registered", object)
            raise RuntimeError("boom")

    registered(Broken(), "undo-broken")
    with pytest.warns(UserWarning, match=r"dferbench_register_models failed \(plugin 'undo-broken', not from an "
                                         r"installed distribution\): RuntimeError: boom; its registrations are skipped"):
        models = plugins.models()
    assert "toy-model" in models and "zeroshot-clip" in models and "half-registered" not in models


def test_a_builtin_name_from_another_plugin_is_skipped(registered):
    class Clash:
        @hookimpl
        def dferbench_register_datasets(self, register):
            register("synthetic", lambda options: None, description="a third party's")
            register("lab-data", lambda options: None)

    registered(Clash(), "undo-clash")
    with pytest.warns(UserWarning, match="dataset 'synthetic' of plugin 'undo-clash', not from an installed "
                                         "distribution clashes with the built-in one of plugin 'synthetic', "
                                         "distribution 'dferbench'"):
        found = plugins.datasets()
    assert found["synthetic"].plugin.name == "synthetic" and found["lab-data"].plugin.name == "undo-clash"
    res = CliRunner().invoke(cli, ["list", "datasets"])
    assert res.exit_code == 0 and "lab-data" in res.output


def test_two_third_parties_with_one_name_the_first_wins(toy_plugin, registered):
    class Second:
        @hookimpl
        def dferbench_register_datasets(self, register):
            register("toy", lambda options: None)

    registered(Second(), "undo-second")
    with pytest.warns(UserWarning, match="dataset 'toy' of plugin 'undo-second'.* clashes with the one of plugin "
                                         "'undo-toy'"):
        assert plugins.datasets()["toy"].plugin.name == "undo-toy"


class Faulty:
    """A dataset and a model whose code raises where the harness calls it."""

    def __init__(self, where):
        self.where = where

    def dataset(self, options):
        from conftest import make_toy_dataset

        if self.where == "dataset":
            raise ValueError("cannot parse row 3")
        return make_toy_dataset(options)

    @hookimpl
    def dferbench_register_datasets(self, register):
        register("faulty-data", self.dataset, options={"clips_per_fold": 4})

    @hookimpl
    def dferbench_register_models(self, register):
        where = self.where

        class Method:
            def __init__(self, ctx):
                if where == "factory":
                    raise ImportError("No module named 'lab_backbone'")
                self.n = len(ctx.classes)

            def fit(self, train, monitor):
                if where == "fit":
                    raise RuntimeError("CUDA error: device-side assert triggered\nmore detail")
                return {}

            def predict(self, clips):
                import numpy as np

                if where == "predict":
                    raise IndexError("index 3 is out of bounds")
                return np.zeros((len(clips), self.n))

        register("faulty-model", Method, presets={"default": {"data": {"image_size": 8}}})


@pytest.mark.parametrize("where, what, error", [
    ("dataset", "dataset 'faulty-data'", "ValueError: cannot parse row 3"),
    ("factory", "model 'faulty-model'", "ImportError: No module named 'lab_backbone'"),
    ("fit", "model 'faulty-model' fit", "RuntimeError: CUDA error: device-side assert triggered more detail"),
    ("predict", "model 'faulty-model' predict", "IndexError: index 3 is out of bounds"),
])
def test_plugin_code_fails_in_one_line_naming_plugin(registered, tmp_path, where, what, error):
    from dferbench.plugin.method import ModelContext

    registered(Faulty(where), "undo-faulty")
    with pytest.raises(PluginFailure) as caught:
        data = plugins.get("dataset", "faulty-data").build({"clips_per_fold": 4})
        ctx = ModelContext(model="faulty-model", dataset="faulty-data", fold=1, classes=data.classes, config={},
                           device="cpu", seed=1, workdir=tmp_path, texts=lambda name, classes: [])
        method = plugins.get("model", "faulty-model").build(ctx)
        method.fit(data.split(1, "train"), None)
        method.predict(data.split(1, "test"))
    message = str(caught.value)
    assert message.startswith(f"{what} failed (plugin 'undo-faulty', not from an installed distribution): {error}")
    assert "\n" not in message and caught.value.plugin.name == "undo-faulty"
    assert caught.value.distribution == "" and isinstance(caught.value.__cause__, Exception)
    res = CliRunner().invoke(cli, ["run", "-m", "faulty-model", "-d", "faulty-data", "--folds", "1",
                                   "-o", str(tmp_path), "--no-leaderboard"])
    assert res.exit_code != 0 and "Traceback" not in res.output and error in res.output


def test_debug_shows_the_plugins_traceback(registered, tmp_path, monkeypatch):
    registered(Faulty("fit"), "undo-faulty")
    monkeypatch.setenv("DFERBENCH_DEBUG", "1")
    res = CliRunner().invoke(cli, ["run", "-m", "faulty-model", "-d", "faulty-data", "--folds", "1",
                                   "-o", str(tmp_path), "--no-leaderboard"])
    assert res.exit_code != 0 and "Traceback" in res.stderr and "in fit" in res.stderr


def test_unknown_names_suggest_the_closest():
    with pytest.raises(DferbenchError, match="unknown model 'zeroshot-clp'. Did you mean 'zeroshot-clip'?"):
        plugins.get("model", "zeroshot-clp")
    with pytest.raises(DferbenchError, match="unknown text set 'descriptor'. Did you mean 'descriptors'?"):
        plugins.get("text set", "descriptor")


def test_cli_lists_plugins_and_registrations():
    runner = CliRunner()
    out = runner.invoke(cli, ["plugins"]).output
    assert "baselines" in out and "dferbench_register_models" in out and "0.1.0" in out
    assert out.splitlines()[0].split()[:3] == ["plugin", "distribution", "version"]
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
def make_fake_distribution(root, body, dist="badplug"):
    (root / "badplug.py").write_text(textwrap.dedent(body))
    info = root / f"{dist.replace('-', '_')}-9.9.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {dist}\nVersion: 9.9\n")
    (info / "entry_points.txt").write_text("[dferbench]\nbadplug = badplug\n")


def dferbench(root, *args, **env):
    environ = {**os.environ, "PYTHONPATH": str(root)}
    environ.pop("DFERBENCH_DISABLE_PLUGINS", None)
    environ.update(env)
    return subprocess.run([sys.executable, "-m", "dferbench", *args], capture_output=True, text=True,
                          env=environ, timeout=120)


def list_models(root, **env):
    return dferbench(root, "list", "models", **env)


def test_broken_entry_point_is_skipped_with_its_distribution_named(tmp_path):
    make_fake_distribution(tmp_path, "raise ImportError('missing dependency xyz')\n")
    res = list_models(tmp_path)
    assert res.returncode == 0 and "zeroshot-clip" in res.stdout
    assert "plugin 'badplug' from distribution 'badplug' failed to load: ImportError: missing dependency xyz" in res.stderr
    strict = list_models(tmp_path, DFERBENCH_STRICT_PLUGINS="1")
    assert strict.returncode != 0 and "DFERBENCH_STRICT_PLUGINS" in strict.stderr
    assert "Traceback" not in strict.stderr


def test_plugins_can_be_disabled_by_name_distribution_or_all_third_party(tmp_path):
    make_fake_distribution(tmp_path, """
        from dferbench import hookimpl

        @hookimpl
        def dferbench_register_models(register):
            register("third-party-model", object, description="from badplug")
    """, dist="Lab-Models")
    assert "third-party-model" in list_models(tmp_path).stdout
    listed = dferbench(tmp_path, "plugins").stdout
    assert any(line.split()[:3] == ["badplug", "Lab-Models", "9.9"] for line in listed.splitlines()), listed
    for off in ("badplug", "Lab-Models", "lab_models", "third-party"):
        out = list_models(tmp_path, DFERBENCH_DISABLE_PLUGINS=off).stdout
        assert "third-party-model" not in out and "zeroshot-clip" in out, off
    assert "zeroshot-clip" not in list_models(tmp_path, DFERBENCH_DISABLE_PLUGINS="baselines").stdout


def test_an_installed_plugin_reusing_a_builtin_name_costs_only_itself(tmp_path):
    make_fake_distribution(tmp_path, """
        from dferbench import hookimpl

        @hookimpl
        def dferbench_register_datasets(register):
            register("synthetic", lambda options: 1 / 0, description="the lab's")
    """, dist="lab-data")
    res = dferbench(tmp_path, "list", "datasets")
    assert res.returncode == 0 and "Rendered face clips" in res.stdout and "the lab's" not in res.stdout
    assert ("dataset 'synthetic' of plugin 'badplug', distribution 'lab-data' 9.9 clashes with the built-in one of "
            "plugin 'synthetic', distribution 'dferbench' 0.1.0") in res.stderr


def test_trace_shows_every_hook_call_and_what_each_plugin_registered(tmp_path):
    make_fake_distribution(tmp_path, """
        from dferbench import hookimpl

        @hookimpl
        def dferbench_register_models(register):
            register("third-party-model", object)
    """)
    res = list_models(tmp_path, DFERBENCH_TRACE_PLUGINS="1")
    assert res.returncode == 0
    lines = [line for line in res.stderr.splitlines() if line.startswith("[dferbench]")]
    call = next(line for line in lines if line.startswith("[dferbench] dferbench_register_models(register="))
    assert "implementations:" in call and "badplug" in call and "baselines" in call and "dferclip" in call
    assert any("badplug (plugin 'badplug', distribution 'badplug' 9.9): registered 'third-party-model'" in line
               for line in lines)
    assert any("dferclip" in line and "registered 'dferclip'" in line for line in lines)
    assert any(line.startswith("[dferbench] dferbench_register_models answered") for line in lines)


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
