"""dferbench robustness: one training per unit, cells as ordinary results, resume, the table."""

from __future__ import annotations

import json

import numpy as np

import pytest
from click.testing import CliRunner

from dferbench import api
from dferbench.cli import cli
from dferbench.data import corruptions as corr
from dferbench.errors import DferbenchError
from dferbench.report import leaderboard, robustness as report
from dferbench.run.results import iter_results

from conftest import ToyMethod

CELLS = ["low_light", "frame_drop"]


def toy_robustness(tmp_path, **kw):
    lines: list[str] = []
    results = api.robustness("toy-model", "toy", output=tmp_path, corruptions=CELLS, echo=lines.append, **kw)
    return results, lines


def cell_path(tmp_path, cell: str, fold: int = 1) -> object:
    return tmp_path / "toy" / "toy-model" / "robustness" / cell / f"fold{fold}-seed1.json"


def test_trains_once_per_unit_and_writes_one_result_per_cell(toy_plugin, tmp_path):
    ToyMethod.calls.clear()
    results, _ = toy_robustness(tmp_path, folds=[1, 2])
    assert ToyMethod.calls == ["fit", "fit"]  # one training per unit, 11 cells each
    assert [(r["fold"], r["corruption"], r["severity"]) for r in results][:3] == \
        [(1, "clean", 0), (1, "low_light", 1), (1, "low_light", 2)]
    assert len(results) == 2 * (1 + 5 * len(CELLS))
    saved = json.loads(cell_path(tmp_path, "low_light-5").read_text())
    assert saved["protocol"] == "robustness" and (saved["corruption"], saved["severity"]) == ("low_light", 5)
    assert saved["corruption_level"] == corr.CORRUPTIONS["low_light"].levels[4]
    assert saved["corruption_seed"] == 0 and saved["corruptions_version"] == corr.VERSION
    assert len(saved["history"]) == 3  # the training's epochs, recorded in every cell
    hashes = {r["config_hash"] for r in results if r["fold"] == 1}
    assert len(hashes) == len(results) // 2  # every cell hashes differently
    assert cell_path(tmp_path, "low_light-5").with_suffix(".predictions.csv").exists()
    # 3 stops darker: the brightness the toy model reads is gone
    clean = json.loads(cell_path(tmp_path, "clean-0").read_text())
    assert clean["war"] > saved["war"] + 20


def test_clean_cell_is_a_plain_run(toy_plugin, tmp_path):
    plain = api.run("toy-model", "toy", folds=[2], output=tmp_path / "plain", echo=lambda m: None)[0]
    results, _ = toy_robustness(tmp_path / "rob", folds=[2], severities=[3])
    clean = results[0]
    assert (clean["corruption"], clean["uar"], clean["war"]) == ("clean", plain["uar"], plain["war"])
    assert clean["confusion"] == plain["confusion"]
    plain_csv = (tmp_path / "plain" / "toy" / "toy-model" / "fold2-seed1.predictions.csv").read_text()
    assert cell_path(tmp_path / "rob", "clean-0", fold=2).with_suffix(".predictions.csv").read_text() == plain_csv
    assert len(results) == 1 + len(CELLS)  # --severities 3


def test_resumes_at_the_missing_cells_and_retrains_only_then(toy_plugin, tmp_path):
    first, _ = toy_robustness(tmp_path, folds=[1])
    ToyMethod.calls.clear()
    again, lines = toy_robustness(tmp_path, folds=[1])
    assert ToyMethod.calls == [] and again == first  # nothing left: no training
    assert sum(line.startswith("skip") for line in lines) == len(first)
    for cell in ("frame_drop-4", "frame_drop-5"):  # a run killed before its last two cells
        cell_path(tmp_path, cell).unlink()
    resumed, lines = toy_robustness(tmp_path, folds=[1])
    assert ToyMethod.calls == ["fit"]
    assert [line.split("  [")[-1] for line in lines if line.startswith("run")] == ["frame_drop 4]", "frame_drop 5]"]
    assert [(r["uar"], r["war"]) for r in resumed] == [(r["uar"], r["war"]) for r in first]  # CPU training repeats


def test_a_changed_corruption_table_reruns_its_cells(toy_plugin, tmp_path, monkeypatch):
    toy_robustness(tmp_path, folds=[1])
    monkeypatch.setattr(corr, "VERSION", corr.VERSION + 1)
    _, lines = toy_robustness(tmp_path, folds=[1])
    ran = [line for line in lines if line.startswith("run")]
    assert len(ran) == 5 * len(CELLS) and not any("[clean 0]" in line for line in ran)


def test_test_clips_are_read_through_the_corrupting_reader():
    """The gpu and reference pipelines open JPEG folders themselves: test clips take the cpu one."""
    from conftest import make_toy_dataset
    from dferbench.data.loader import ClipSet
    from dferbench.run.robustness import CorruptedTest

    dataset = make_toy_dataset({"clips_per_fold": 4})

    def make(records, *, name=None, reader=None, augmentation="none", pipeline=None):
        return ClipSet("toy", records, reader or dataset.reader, pipeline=pipeline or "reference")

    train, test = CorruptedTest("low_light", 5).clipsets(dataset, 1, make)
    assert train.pipeline == "reference" and train.reader is dataset.reader  # training is untouched
    assert test.pipeline == "cpu" and isinstance(test.reader, corr.CorruptedReader)
    assert test.reader.fingerprint_tag == "low_light@5#0" and test.fingerprint() != train.subset([]).fingerprint()


def test_robustness_results_stay_off_the_plain_leaderboard(toy_plugin, tmp_path):
    toy_robustness(tmp_path, folds=[1], severities=[1])
    assert list(iter_results(tmp_path, "toy")) == []
    assert len(list(iter_results(tmp_path, "toy", protocol="robustness"))) == 1 + len(CELLS)
    assert leaderboard.render("toy", tmp_path)[1] == []  # no plain rows


def test_table_mce_and_plot(toy_plugin, tmp_path):
    toy_robustness(tmp_path, folds=[1, 2])
    markdown, rows = report.render("toy", tmp_path, baseline="toy-model", n_resamples=200)
    (row,) = rows
    assert row.units == [(1, 1), (2, 1)] and row.complete() == CELLS
    ce = corr.mean_corruption_error(row.records(CELLS))
    summary = next(line for line in markdown.splitlines() if line.startswith("| toy-model "))
    cells = [c.strip() for c in summary.strip("|").split("|")]
    assert cells[4] == "2/13" and cells[6] == f"{ce['mce']:.1f}" and cells[7] == f"{ce['relative_mce']:.1f}"
    assert cells[8] == "100.0"  # normalised by itself
    low_light = next(line for line in markdown.splitlines() if line.startswith("| low_light "))
    assert [c.strip() for c in low_light.strip("|").split("|")][-2:] == ["100.0", "100.0"]
    frame_drop = next(line for line in markdown.splitlines() if line.startswith("| frame_drop "))
    assert [c.strip() for c in frame_drop.strip("|").split("|")][-2:] == ["100.0", "-"]  # the toy ignores time
    assert cells[9] == "100.0 (1)"  # the normalised relative mCE counts low_light only
    assert "| low_light " in markdown and "| frame_drop " in markdown and " [" in markdown  # intervals
    report.plot(rows, tmp_path / "plot.png", "toy")
    assert (tmp_path / "plot.png").read_bytes()[:4] == b"\x89PNG"
    written = leaderboard.build(tmp_path, tmp_path / "boards", ["toy"])
    assert str(tmp_path / "boards" / "robustness-toy.md") in written
    assert (tmp_path / "boards" / "robustness-toy.png").exists()
    assert leaderboard.build(tmp_path, tmp_path / "boards", ["toy"], check=True) == []


def test_partial_severities_are_shown_without_an_mce(toy_plugin, tmp_path):
    toy_robustness(tmp_path, folds=[1], severities=[1, 5])
    markdown, (row,) = report.render("toy", tmp_path, n_resamples=0)
    assert row.complete() == [] and row.shown() == CELLS
    assert "| low_light " in markdown and " - " in markdown


def test_cli(toy_plugin, tmp_path):
    result = CliRunner().invoke(cli, ["robustness", "-m", "toy-model", "-d", "toy", "--folds", "1", "--corruptions",
                                      "low_light", "--severities", "1,2,3,4,5", "-o", str(tmp_path), "--plot",
                                      str(tmp_path / "p.png")])
    assert result.exit_code == 0, result.output
    assert "# Robustness: toy" in result.output and "| low_light " in result.output
    assert (tmp_path / "p.png").exists()


@pytest.mark.parametrize("kw,message", [
    ({"corruptions": ["fog"]}, "unknown corruption 'fog'"),
    ({"severities": [0, 6]}, "severities must be some of 1, 2, 3, 4, 5"),
    ({"overrides": ["protocol.selection=best_on_test"]}, "robustness runs keep the last epoch"),
])
def test_bad_settings_are_one_line(toy_plugin, tmp_path, kw, message):
    with pytest.raises(DferbenchError, match=message):
        api.robustness("toy-model", "toy", output=tmp_path, echo=lambda m: None, **kw)
    assert not list(tmp_path.rglob("*.json"))


def test_frame_cache_answers_a_repeated_call_from_memory():
    from conftest import make_toy_dataset
    from dferbench.run.robustness import FrameCache

    dataset = make_toy_dataset({"clips_per_fold": 4})
    calls = []

    def reader(record, indices):
        calls.append(list(indices))
        return dataset.reader(record, indices)

    first, second = dataset.split(1, "test")[:2]
    cache = FrameCache(reader)
    for record, indices in ((first, [0, 2, 4]), (first, [4, 4, 1]), (first, [0, 2, 4]), (second, [1, 2])):
        out = cache(record, indices)
        assert np.array_equal(out, dataset.reader(record, indices))
        out[:] = 0  # a caller's corruption in place never reaches the cache
    assert calls == [[0, 2, 4], [4, 4, 1], [1, 2]]
    assert np.array_equal(cache(first, [0, 2, 4]), dataset.reader(first, [0, 2, 4]))
    full = FrameCache(reader, max_bytes=3 * 8 * 8 * 3)  # room for one clip of three 8 x 8 frames
    full(first, [0, 2, 4])
    full(second, [0, 2, 4])
    assert list(full.frames) == [first.clip_id]


def test_a_failing_cell_is_recorded_and_the_others_run(toy_plugin, tmp_path, monkeypatch):
    import dataclasses

    from dferbench.errors import UnitsFailed

    def broken(idx, n_frames, level, key):
        raise RuntimeError("decoder gave up")

    monkeypatch.setitem(corr.CORRUPTIONS, "frame_drop", dataclasses.replace(corr.CORRUPTIONS["frame_drop"], fn=broken))
    ToyMethod.calls.clear()
    with pytest.raises(UnitsFailed) as err:
        toy_robustness(tmp_path, folds=[1])
    assert len(err.value.failed) == 5 and "[frame_drop 1]" in err.value.failed[0]
    assert len(err.value.results) == 1 + 5 and ToyMethod.calls == ["fit"]  # the failures cost no retraining
    failure = json.loads(cell_path(tmp_path, "frame_drop-3").with_suffix(".failed.json").read_text())
    assert "decoder gave up" in failure["error"]


def test_a_checkpoint_is_scored_as_it_is(tmp_path):
    """DFER-CLIP trained one epoch saves its checkpoint; robustness scores it without training,
    and its clean cell is what `evaluate` gives."""
    tiny = ["data.num_clips=35", "train.epochs=1"]
    api.run("dferclip", "synthetic", folds=[2], output=tmp_path / "train", echo=lambda m: None,
            overrides=tiny + ["model.save_checkpoint=true"])
    (checkpoint,) = (tmp_path / "train").rglob("fold2-seed1.checkpoint.safetensors")
    scored = api.robustness(None, "synthetic", checkpoint=checkpoint, folds=[2], corruptions=["gaussian_blur"],
                            severities=[5], overrides=["data.num_clips=35"], output=tmp_path / "rob",
                            echo=lambda m: None)
    assert [(r["corruption"], r["selection"]) for r in scored] == [("clean", "checkpoint"),
                                                                   ("gaussian_blur", "checkpoint")]
    assert scored[0]["run_name"] == f"dferclip[checkpoint={checkpoint.name}]"
    (plain,) = api.evaluate(None, "synthetic", checkpoint, folds=[2], overrides=["data.num_clips=35"],
                            output=tmp_path / "eval", echo=lambda m: None)
    assert (scored[0]["uar"], scored[0]["confusion"]) == (plain["uar"], plain["confusion"])
    with pytest.raises(DferbenchError, match="--config and --seeds do not apply"):
        api.robustness(None, "synthetic", checkpoint=checkpoint, seeds=[2], output=tmp_path / "x")
