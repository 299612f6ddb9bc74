"""The unit protocol end to end on a toy plugin: results, resume, determinism, errors."""

import json

import pytest

from dferbench import api
from dferbench.run import runner
from dferbench.errors import DferbenchError

from conftest import ToyMethod


def run_toy(tmp_path, **kw):
    return api.run("toy-model", "toy", output=tmp_path, echo=lambda m: None, **kw)


def test_every_unit_writes_a_full_result(toy_plugin, tmp_path):
    results = run_toy(tmp_path, seeds=[1, 2])
    assert [(r["fold"], r["seed"]) for r in results] == [(1, 1), (1, 2), (2, 1), (2, 2), (3, 1), (3, 2)]
    path = tmp_path / "toy" / "toy-model" / "fold2-seed1.json"
    saved = json.loads(path.read_text())
    for key in ("model", "dataset", "fold", "seed", "config", "config_hash", "uar", "war", "per_class_recall",
                "confusion", "n_test", "selection", "num_frames", "image_size", "normalize", "versions",
                "git_commit", "device", "wall_seconds", "history"):
        assert key in saved, key
    assert saved["versions"]["torch"] and saved["selection"] == "last_epoch"
    assert len(saved["history"]) == 3  # one row per epoch
    preds = path.with_suffix(".predictions.csv").read_text().splitlines()
    assert preds[0] == "clip_id,label,prediction,logit_low,logit_mid,logit_high,label_name,prediction_name"
    assert len(preds) == 1 + saved["n_test"]
    rows = [line.split(",") for line in preds[1:]]
    assert all(r[6] == saved["classes"][int(r[1])] and r[7] == saved["classes"][int(r[2])] for r in rows)
    assert saved["war"] > 60  # brightness is learnable: the engine really trains


def test_rerun_skips_finished_units_and_reruns_changed_config(toy_plugin, tmp_path):
    ToyMethod.calls.clear()
    run_toy(tmp_path, folds=[1])
    run_toy(tmp_path, folds=[1, 2])
    assert ToyMethod.calls == ["fit", "fit"]  # fold 1 ran once
    run_toy(tmp_path, folds=[1], overrides=["data.workers=0"])  # non-semantic: still skipped
    assert len(ToyMethod.calls) == 2
    run_toy(tmp_path, folds=[1], overrides=["train.epochs=4"])  # a new variant, its own row
    assert len(ToyMethod.calls) == 3
    assert sorted(p.name for p in (tmp_path / "toy").iterdir()) == ["toy-model", "toy-model-train.epochs-4"]


def test_interrupted_run_keeps_finished_units(toy_plugin, tmp_path):
    with pytest.raises(KeyboardInterrupt):
        run_toy(tmp_path, overrides=["model.fail_on_fold=2"])
    files = sorted(p.name for p in (tmp_path / "toy").rglob("*.json"))
    assert files == ["fold1-seed1.json"]
    assert not list((tmp_path / "toy").rglob("*.tmp"))


def test_same_seed_same_numbers(toy_plugin, tmp_path):
    a = run_toy(tmp_path / "a", folds=[1])[0]
    b = run_toy(tmp_path / "b", folds=[1])[0]
    assert (tmp_path / "a/toy/toy-model/fold1-seed1.predictions.csv").read_text() == \
        (tmp_path / "b/toy/toy-model/fold1-seed1.predictions.csv").read_text()
    def numbers(history):  # all but the wall time of each epoch
        return [{k: v for k, v in row.items() if k != "seconds"} for row in history]

    assert numbers(a["history"]) == numbers(b["history"])


def test_best_on_test_selects_the_best_epoch(toy_plugin, tmp_path):
    r = run_toy(tmp_path, folds=[1], overrides=["protocol.selection=best_on_test", "train.epochs=4"])[0]
    wars = [row["test_war"] for row in r["history"]]
    assert r["selection"] == "best_on_test"
    assert r["fit"]["selected_epoch"] == 1 + wars.index(max(wars))
    assert r["war"] == pytest.approx(max(wars), abs=1e-3)


@pytest.mark.parametrize("kwargs, message", [
    (dict(model="toy-modle", dataset="toy"), "unknown model 'toy-modle'. Did you mean 'toy-model'?"),
    (dict(model="toy-model", dataset="tyo"), "unknown dataset 'tyo'. Did you mean 'toy'?"),
    (dict(model="toy-model", dataset="toy", overrides=["train.epoch=3"]), "unknown key train.epoch"),
    (dict(model="toy-model", dataset="toy", overrides=["train.epochs=three"]), "train.epochs must be an integer"),
    (dict(model="toy-model", dataset="toy", folds=[7]), "dataset 'toy' has no fold 7; valid folds: [1, 2, 3]"),
])
def test_bad_input_stops_before_any_work(toy_plugin, tmp_path, kwargs, message):
    ToyMethod.calls.clear()
    with pytest.raises(DferbenchError) as err:
        api.run(output=tmp_path, echo=lambda m: None, **kwargs)
    assert message in str(err.value)
    assert ToyMethod.calls == []
    assert not list(tmp_path.rglob("*.json"))


def test_plan_records_variant_name(toy_plugin):
    plan = runner.plan("toy-model", "toy", overrides=["model.lr=0.1"])
    assert plan.run_name == "toy-model[lr=0.1]"
    assert runner.plan("toy-model", "toy").run_name == "toy-model"


def test_suites_expand_to_model_variants(toy_plugin):
    entries = api.expand("suite:paper", "synthetic")
    assert ("zeroshot-clip", ["model.text=descriptors"]) in entries
    assert ("dferclip", ["model.temporal_depth=0"]) in entries
    assert all(name in api.models_for("synthetic") for name, _ in entries)
    assert ("toy-model", []) in api.expand("all", "toy")
    with pytest.raises(DferbenchError, match="unknown suite 'papr'. Did you mean 'paper'?"):
        api.expand("suite:papr", "synthetic")


def test_empty_splits_stop_with_one_line(tmp_path):
    from dferbench.testing import write_frames

    for name in ("a", "b"):
        write_frames(tmp_path / "frames" / name, 5, size=8)
    tiny = ["model.clip_model=dferbench-test-tiny", "model.pretrained=", "data.image_size=32", "data.num_frames=4"]
    evaluation_only = tmp_path / "eval.csv"
    evaluation_only.write_text("path,label\nframes/a,happy\nframes/b,sad\n")
    overrides = tiny + [f"data.file={evaluation_only}"]
    for model in ("dferclip", "linear-probe", "coop"):
        with pytest.raises(DferbenchError, match="train split of this fold has no clips .* this model trains"):
            api.run(model, "custom", output=tmp_path / "out", overrides=overrides, echo=lambda m: None)
    assert api.run("zeroshot-clip", "custom", output=tmp_path / "out", overrides=overrides,
                   echo=lambda m: None)[0]["n_test"] == 2
    train_only = tmp_path / "train.csv"
    train_only.write_text("path,label,split\nframes/a,happy,train\nframes/b,sad,train\n")
    with pytest.raises(DferbenchError, match="the test split of fold 1 has no clips; nothing to score"):
        api.run("zeroshot-clip", "custom", output=tmp_path / "out", overrides=tiny + [f"data.file={train_only}"],
                echo=lambda m: None)


def test_skipped_clips_are_said_not_only_recorded(tmp_path):
    from dferbench.testing import write_frames

    write_frames(tmp_path / "frames" / "a", 5, size=8)
    (tmp_path / "clips.csv").write_text("path,label\nframes/a,happy\nframes/gone,sad\n")
    said = []
    result = api.run("zeroshot-clip", "custom", output=tmp_path / "out", echo=said.append,
                     overrides=["model.clip_model=dferbench-test-tiny", "model.pretrained=", "data.image_size=32",
                                "data.num_frames=4", f"data.file={tmp_path / 'clips.csv'}",
                                "data.skip_bad_clips=true"])[0]
    assert result["dataset_notes"]["skipped_bad_clips"] == 1 and result["n_test"] == 1
    assert any(m.startswith("note  custom: 1 clips skipped as bad") for m in said)
