"""Cross-dataset transfer: shared classes by emotion name, scoring, records, paths, the matrix."""

from __future__ import annotations

import csv
import json

import numpy as np
import pytest
from click.testing import CliRunner

from dferbench import api, hookimpl
from dferbench.cli import cli
from dferbench.data.records import ClipRecord, DFERDataset
from dferbench.errors import DferbenchError
from dferbench.plugin.manager import pm
from dferbench.report import leaderboard, transfer as report
from dferbench.run.results import iter_results
from dferbench.run.transfer import shared_classes

from conftest import ToyMethod, make_toy_dataset

TOY = make_toy_dataset({"clips_per_fold": 8})

BRIGHTNESS = {"low": 0, "mid": 1, "high": 2, "extra": 1}  # the toy reader's level of each class name


class OtherToyReader:
    """The toy reader's frames for another class order: brightness by class name."""

    classes = ["high", "low", "extra"]

    def __call__(self, record: ClipRecord, indices) -> np.ndarray:
        rng = np.random.default_rng(1000 + int(record.clip_id.split("-")[1]))
        base = 40 + 80 * BRIGHTNESS[self.classes[record.label]]
        return np.clip(base + rng.normal(0, 25, size=(len(indices), 8, 8, 3)), 0, 255).astype(np.uint8)


def make_other_toy(options) -> DFERDataset:
    """Classes ``high, low, extra``: two shared with ``toy`` (in another order), one not."""
    records = [ClipRecord(f"b-{i}", f"b:{i}", 6 + i % 9, i % 3, subject=f"s{i % 4}") for i in range(36)]
    splits = {k: {"test": [r for r in records if int(r.subject[1:]) == k - 1],
                  "train": [r for r in records if int(r.subject[1:]) != k - 1]} for k in (1, 2)}
    return DFERDataset("toy-b", list(OtherToyReader.classes), splits, OtherToyReader())


class OtherToy:
    @hookimpl
    def dferbench_register_datasets(self, register):
        register("toy-b", make_other_toy, description="3 classes, 2 folds")
        register("toy-nothing", lambda options: DFERDataset("toy-nothing", ["a", "b"], {1: {}, 2: {}},
                                                           OtherToyReader()), description="no shared emotion")


@pytest.fixture
def toys(toy_plugin):
    pm.register(OtherToy(), name="undo-toy-b")
    try:
        yield
    finally:
        pm.unregister(name="undo-toy-b")


def transfer(tmp_path, **kw):
    kw.setdefault("train_dataset", "toy")
    return api.run("toy-model", kw.pop("dataset", "toy-b"), output=tmp_path, echo=kw.pop("echo", lambda m: None),
                   **kw)


def test_shared_classes_follow_the_test_order():
    assert shared_classes(["low", "mid", "high"], ["high", "low", "extra"]) == [(0, 2), (1, 0)]
    assert shared_classes(["a"], ["b"]) == []


def test_scored_over_the_shared_classes(toys, tmp_path):
    lines: list[str] = []
    (result,) = transfer(tmp_path, folds=[1], echo=lines.append)
    assert lines[0] == ("transfer toy -> toy-b: 2 shared classes; dropped from toy-b (their test clips are not "
                        "scored): extra; toy classes never predicted: mid")
    path = tmp_path / "toy-b" / "toy-model" / "transfer-from-toy" / "fold1-seed1.json"
    saved = json.loads(path.read_text())
    assert saved == {**result, **saved} and saved["protocol"] == "transfer"
    assert (saved["dataset"], saved["train_dataset"], saved["train_fold"]) == ("toy-b", "toy", "same")
    assert saved["classes"] == ["high", "low"] and saved["train_classes"] == ["low", "mid", "high"]
    assert saved["class_map"] == {"high": "high", "low": "low"}
    assert saved["dropped_test_classes"] == ["extra"] and saved["unscored_train_classes"] == ["mid"]
    test_clips = make_other_toy({}).split(1, "test")
    assert saved["n_test"] == sum(r.label != 2 for r in test_clips) and saved["n_train"] == len(TOY.split(1, "train"))
    with path.with_suffix(".predictions.csv").open() as f:
        rows = list(csv.DictReader(f))
    assert list(rows[0])[:5] == ["clip_id", "label", "prediction", "logit_high", "logit_low"]
    assert {(r["label"], r["label_name"]) for r in rows} == {("0", "high"), ("1", "low")}
    assert {r["clip_id"] for r in rows} == {r.clip_id for r in test_clips if r.label != 2}
    by_id = {r.clip_id: r for r in test_clips}
    assert all(int(r["label"]) == by_id[r["clip_id"]].label for r in rows)  # high stays 0, low stays 1
    assert saved["war"] > 80  # brightness learnt on toy reads toy-b's classes: the mapping is right


def test_train_fold_all_and_k(toys, tmp_path):
    (every,) = transfer(tmp_path, folds=[2], train_fold="all")
    assert every["n_train"] == 24 and every["train_fold"] == "all"  # every toy clip once
    (third,) = transfer(tmp_path, folds=[2], train_fold=3)
    assert third["n_train"] == len(TOY.split(3, "train")) < 24 and third["train_fold"] == 3
    folders = sorted(p.name for p in (tmp_path / "toy-b" / "toy-model").iterdir())
    assert folders == ["transfer-from-toy-all", "transfer-from-toy-fold3"]
    assert every["config_hash"] != third["config_hash"]


def test_resume_and_a_changed_training_dataset_setting(toys, tmp_path):
    ToyMethod.calls.clear()
    transfer(tmp_path, folds=[1])
    transfer(tmp_path, folds=[1])
    assert ToyMethod.calls == ["fit"]
    (changed,) = transfer(tmp_path, folds=[1], train_overrides=["data.clips_per_fold=10"])
    assert ToyMethod.calls == ["fit", "fit"]
    bigger = make_toy_dataset({"clips_per_fold": 10}).split(1, "train")
    assert changed["n_train"] == len(bigger) > len(TOY.split(1, "train"))


def test_transfer_stays_off_the_plain_leaderboard_and_fills_the_matrix(toys, tmp_path):
    results = tmp_path / "results"
    api.run("toy-model", "toy-b", folds=[1, 2], output=results, echo=lambda m: None)
    api.run("toy-model", "toy", folds=[1, 2], output=results, echo=lambda m: None)
    transfer(results, folds=[1])
    transfer(results, dataset="toy", train_dataset="toy-b", folds=[1, 2])
    assert {r["fold"] for r in iter_results(results, "toy-b")} == {1, 2}  # plain runs only
    assert len(list(iter_results(results, "toy-b", protocol="transfer"))) == 1
    markdown, found = report.render(results, n_resamples=0)
    cells = found["toy-model", "same"]
    assert [r["fold"] for r in cells["toy-b", "toy-b"]] == [1]  # the diagonal on the transfer cells' folds
    assert sorted(r["fold"] for r in cells["toy", "toy"]) == [1, 2]
    table = [line for line in markdown.splitlines() if line.startswith("| toy")]
    assert len(table) == 2 and all(" - " not in line for line in table)
    assert "- toy → toy-b: 2 shared classes; dropped from toy-b: extra; toy classes never predicted: mid." in markdown
    written = leaderboard.build(results, tmp_path / "boards")
    assert str(tmp_path / "boards" / "transfer.md") in written
    assert "# Leaderboard: toy-b" in (tmp_path / "boards" / "toy-b.md").read_text()
    assert leaderboard.build(results, tmp_path / "boards", check=True) == []


def test_zero_shot_over_a_subset_of_classes_is_the_plain_run(tmp_path):
    """Zero-shot scores classes independently: MAFW-ordered synthetic-11's model restricted to
    DFEW's 7 classes scores the 7-class synthetic test split exactly as a plain run does."""
    options = dict(folds=[1], overrides=["model.text=descriptors", "data.num_clips=35"], echo=lambda m: None)
    (plain,) = api.run("zeroshot-clip", "synthetic", output=tmp_path / "plain", **options)
    (moved,) = api.run("zeroshot-clip", "synthetic", output=tmp_path / "moved", train_dataset="synthetic-11",
                       train_overrides=["data.num_clips=55"], **options)
    assert moved["unscored_train_classes"] == ["contempt", "anxiety", "helplessness", "disappointment"]
    assert (moved["uar"], moved["war"], moved["confusion"]) == (plain["uar"], plain["war"], plain["confusion"])


def test_a_trained_model_across_synthetic_domains(tmp_path):
    """DFER-CLIP trains one epoch on synthetic with synthetic's preset, tested on synthetic-wild."""
    (result,) = api.run("dferclip", "synthetic-wild", folds=[1], output=tmp_path, echo=lambda m: None,
                        train_dataset="synthetic", train_overrides=["data.num_clips=35"],
                        overrides=["data.num_clips=35", "train.epochs=1"])
    assert result["config"]["model"]["clip_model"] == "dferbench-tiny"  # synthetic's preset
    assert result["classes"] == result["train_classes"] and result["dropped_test_classes"] == []
    assert result["n_train"] == 28 and result["history"] and 0 <= result["uar"] <= 100


def test_cli_prints_the_matrix(toys, tmp_path):
    out = CliRunner().invoke(cli, ["run", "-m", "toy-model", "-d", "toy-b", "--train-dataset", "toy", "--folds", "1",
                                   "-o", str(tmp_path)])
    assert out.exit_code == 0, out.output
    assert "# Cross-dataset transfer" in out.output and "| toy " in out.output


@pytest.mark.parametrize("kw,message", [
    ({"train_dataset": "toy-b"}, "--train-dataset is the dataset tested"),
    ({"train_dataset": "toy-nothing"}, "share no emotion"),
    ({"train_dataset": "nope"}, "unknown dataset 'nope'"),
    ({"dataset": "toy", "train_dataset": "toy-b"}, "has no fold 3 to pair with toy fold 3"),
    ({"train_fold": "x"}, "--train-fold must be 'same', 'all' or a fold number"),
    ({"train_fold": 7}, "has no fold 7 to train on"),
    ({"train_overrides": ["train.epochs=1"]}, "only data settings of the training dataset"),
    ({"train_overrides": ["data.nope=1"]}, "unknown key data.nope"),
    ({"overrides": ["protocol.selection=best_on_test"]}, "transfer runs keep the last epoch"),
    ({"train_dataset": None, "train_fold": "all"}, "go with --train-dataset"),
])
def test_bad_settings_are_one_line(toys, tmp_path, kw, message):
    kw = {"train_dataset": "toy", **kw}
    with pytest.raises(DferbenchError, match=message):
        api.run("toy-model", kw.pop("dataset", "toy-b"), output=tmp_path, echo=lambda m: None, **kw)
    assert not list(tmp_path.rglob("*.json"))
