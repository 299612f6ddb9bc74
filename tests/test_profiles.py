"""Settings that follow the dataset: profiles, the image size from the model, the fallback,
and the committed units' configs unchanged by all of it."""

import json
from pathlib import Path

import pytest

from dferbench import api, hookimpl
from dferbench.errors import DferbenchError
from dferbench.plugin import manager as plugins
from dferbench.plugin.manager import pm
from dferbench.run import runner

ROOT = Path(__file__).resolve().parents[1]


def test_committed_units_keep_their_config_and_hash():
    """Every committed synthetic unit plans today to the config it was run with."""
    checked = 0
    for dataset in ("synthetic", "synthetic-11"):
        plans = {p.run_name: p for p in (runner.plan(model, dataset, overrides=extra)
                                         for model, extra in api.expand("suite:paper", dataset))}
        for path in sorted((ROOT / "results" / dataset).glob("*/fold*-seed*.json")):
            result = json.loads(path.read_text())
            plan = plans[result["run_name"]]
            assert result["config_hash"] == plan.hash, path
            for section, values in result["config"].items():
                for key, value in values.items():
                    if section != "protocol":
                        assert plan.config[section][key] == value, f"{path}: {section}.{key}"
            checked += 1
    assert checked >= 120


class LabData:
    """A third-party dataset with a profile (and the toy model's dataset from conftest)."""

    @hookimpl
    def dferbench_register_datasets(self, register):
        from conftest import make_toy_dataset

        register("lab-data", make_toy_dataset, options={"clips_per_fold": 4},
                 profile={"data": {"num_frames": 4, "normalize": "clip"},
                          "model": {"clip_model": "dferbench-test-tiny", "pretrained": ""}})


@pytest.fixture
def lab_data():
    pm.register(LabData(), name="undo-lab-data")
    yield
    pm.unregister(name="undo-lab-data")


def test_a_dataset_profile_reaches_the_builtin_models(lab_data, toy_plugin):
    for model in ("zeroshot-clip", "linear-probe", "dferclip", "coop"):
        config = runner.plan(model, "lab-data").config  # random weights (pretrained ""): nothing to download
        assert config["data"]["num_frames"] == 4 and config["data"]["normalize"] == "clip", model
        assert config["model"]["clip_model"] == "dferbench-test-tiny", model
        assert config["data"]["image_size"] == 32, model  # the test CLIP's input, never repeated in a preset
    toy = runner.plan("toy-model", "lab-data").config  # no clip_model option: the model keys are left out
    assert "clip_model" not in toy["model"] and toy["data"]["num_frames"] == 4


def test_a_model_preset_for_the_dataset_wins_over_its_profile(lab_data):
    from conftest import ToyMethod

    class Presets:
        @hookimpl
        def dferbench_register_models(self, register):
            register("lab-model", ToyMethod, options={"clip_model": "x", "lr": 0.5, "fail_on_fold": 0},
                     presets={"default": {"data": {"num_frames": 2, "normalize": "none", "image_size": 8}},
                              "lab-data": {"data": {"num_frames": 6, "image_size": 8}}})
            register("lab-model-2", ToyMethod, options={"lr": 0.5, "fail_on_fold": 0},
                     presets={"default": {"data": {"num_frames": 2, "normalize": "none", "image_size": 8}}})

    pm.register(Presets(), name="undo-presets")
    try:
        own = runner.plan("lab-model", "lab-data").config
        assert own["data"]["num_frames"] == 6  # the model's preset for this dataset beats the profile
        assert own["data"]["normalize"] == "clip"  # ... which beats its default preset (not applied here)
        assert own["model"]["clip_model"] == "dferbench-test-tiny"  # a key the model has
        other = runner.plan("lab-model-2", "lab-data").config
        assert other["data"]["num_frames"] == 4 and other["data"]["normalize"] == "clip"  # profile over default
    finally:
        pm.unregister(name="undo-presets")


def test_the_image_size_follows_the_clip(tmp_path):
    """`custom` with the tiny test CLIP used to stop with a tensor-size mismatch (197 vs 17)."""
    from dferbench.testing import write_frames

    for name in ("a", "b"):
        write_frames(tmp_path / "frames" / name, 5, size=8)
    (tmp_path / "clips.csv").write_text("path,label\nframes/a,happy\nframes/b,sad\n")
    settings = ["model.clip_model=dferbench-test-tiny", "model.pretrained=", "data.num_frames=4",
                f"data.file={tmp_path / 'clips.csv'}"]
    plan = runner.plan("zeroshot-clip", "custom", overrides=settings)
    assert plan.config["data"]["image_size"] == 32 and plan.run_name.startswith("zeroshot-clip[")
    result = api.run("zeroshot-clip", "custom", output=tmp_path / "out", overrides=settings, echo=lambda m: None)[0]
    assert result["image_size"] == 32 and result["n_test"] == 2
    with pytest.raises(DferbenchError, match="data.image_size = 224, but model 'zeroshot-clip' with these settings "
                                             "reads 32x32 images"):
        runner.plan("zeroshot-clip", "custom", overrides=settings + ["data.image_size=224"])


def test_the_fallback_for_an_unknown_dataset_is_each_models_default(toy_plugin):
    """No profile, no preset for the dataset: the model's default preset (the paper's recipe,
    CLIP-normalised pixels for the frozen-CLIP baselines), the size of its CLIP; offline
    without those weights, the plan stops in one line before any work."""
    probe = runner.plan("linear-probe", "toy", weights=False).config
    assert probe["data"]["normalize"] == "clip" and probe["data"]["num_frames"] == 16
    assert probe["model"]["clip_model"] == "ViT-B-32-quickgelu" and probe["data"]["image_size"] == 224
    assert probe["model"]["feature_precision"] == "fp32"  # the paper's; the synthetic presets' fp64 is theirs
    for synthetic in ("synthetic", "synthetic-11"):
        assert runner.plan("linear-probe", synthetic).config["model"]["feature_precision"] == "fp64"
    assert runner.plan("dferclip", "toy", weights=False).config["data"]["normalize"] == "none"  # the authors' [0, 1]
    assert {"linear-probe", "dferclip", "coop", "zeroshot-clip"} <= set(api.models_for("toy"))
    assert runner.FALLBACK_IMAGE_SIZE == 224
    with pytest.raises(DferbenchError, match="ViT-B-32-quickgelu pretrained='openai' are not on this machine"):
        runner.plan("linear-probe", "toy")  # HF_HUB_OFFLINE=1 in the tests, no cached weights


def test_presets_like_takes_another_datasets_recipe_with_its_own_profile(lab_data):
    """A variant of a benchmark (``presets_like``) runs with the model's preset for the
    benchmark over its own profile; a model's preset for the variant itself wins; a
    ``presets_like`` that names no other dataset is refused at registration."""
    from conftest import ToyMethod, make_toy_dataset

    class Variant:
        @hookimpl
        def dferbench_register_models(self, register):
            register("lab-model", ToyMethod, options={"lr": 0.5, "fail_on_fold": 0},
                     presets={"default": {"train": {"epochs": 9}}, "lab-data": {"train": {"epochs": 2}},
                              "lab-own": {"train": {"epochs": 5}}})

        @hookimpl
        def dferbench_register_datasets(self, register):
            for name in ("lab-variant", "lab-own"):
                register(name, make_toy_dataset, options={"clips_per_fold": 4}, presets_like="lab-data",
                         profile={"data": {"num_frames": 3, "normalize": "none", "image_size": 8}})

    class Itself:
        @hookimpl
        def dferbench_register_datasets(self, register):
            register("lab-self", make_toy_dataset, presets_like="lab-self")

    pm.register(Variant(), name="undo-variant")
    pm.register(Itself(), name="undo-itself")
    try:
        with pytest.warns(UserWarning, match="presets_like must name another dataset, got 'lab-self'"):
            assert "lab-self" not in plugins.datasets() and "lab-variant" in plugins.datasets()
        variant = runner.plan("lab-model", "lab-variant").config
        assert variant["train"]["epochs"] == 2 and variant["data"]["num_frames"] == 3  # lab-data's recipe, own profile
        assert runner.plan("lab-model", "lab-own").config["train"]["epochs"] == 5
        assert runner.plan("lab-model", "lab-data").config["data"]["num_frames"] == 4
        assert "lab-model" in api.models_for("lab-variant")
    finally:
        pm.unregister(name="undo-variant")
        pm.unregister(name="undo-itself")
