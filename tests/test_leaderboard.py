import json

import pytest
from click.testing import CliRunner

from dferbench import api
from dferbench.report import leaderboard
from dferbench.cli import cli
from dferbench.run.results import UnitKey


def fake_result(root, run_name, fold, seed, uar, war, selection="last_epoch", dataset="dfew", precision="fp32"):
    path = UnitKey(run_name, dataset, fold, seed, selection).path(root)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({
        "schema": 1, "run_name": run_name, "model": run_name, "variant": "", "dataset": dataset, "fold": fold,
        "seed": seed, "uar": uar, "war": war, "selection": selection, "confusion": [[2, 1], [0, 3]],
        "classes": ["a", "b"], "n_test": 6, "config_hash": "h" + run_name, "num_frames": 16, "image_size": 224,
        "normalize": "none", "family": "text-based", "temporal": True, "precision": precision,
    }))


def test_mean_and_sample_std_over_units(tmp_path):
    fake_result(tmp_path, "m1", 1, 1, 50.0, 60.0)
    fake_result(tmp_path, "m1", 2, 1, 54.0, 64.0)
    fake_result(tmp_path, "m2", 1, 1, 40.0, 45.0, precision="bf16")
    fake_result(tmp_path, "m2", 2, 1, 40.0, 45.0)
    fake_result(tmp_path, "m1", 1, 1, 70.0, 80.0, selection="best_on_test", dataset="dfew")
    text, rows = leaderboard.render("dfew", tmp_path)
    by = {(r["run_name"], r["selection"]): r for r in rows}
    assert by[("m1", "last_epoch")]["uar_text"] == "52.00 ± 2.83"
    assert by[("m1", "last_epoch")]["war_text"] == "62.00 ± 2.83"
    assert by[("m1", "last_epoch")]["folds"] == [1, 2]
    assert by[("m1", "best_on_test")]["uar_text"] == "70.00"  # never mixed with last_epoch
    assert by[("m1", "last_epoch")]["confusion"].tolist() == [[4, 2], [0, 6]]
    assert by[("m1", "last_epoch")]["precision"] == "fp32"
    assert by[("m2", "last_epoch")]["precision"] == "bf16+fp32"  # units computed differently: said, not hidden
    assert "| bf16+fp32 " in text
    # reported rows are present, separate, and carry their source
    assert "## Reported in papers (not produced by dferbench)" in text
    reported = text.split("## Reported in papers")[1]
    dfer = next(line for line in reported.splitlines() if line.startswith("| DFER-CLIP "))
    assert [c.strip() for c in dfer.split("|")[1:5]] == ["DFER-CLIP", "59.61", "71.25", "best_on_test"]
    assert "m1" not in reported


def test_check_detects_stale_and_build_writes_pngs(tmp_path):
    results, out = tmp_path / "results", tmp_path / "boards"
    fake_result(results, "m1", 1, 1, 50.0, 60.0)
    assert api.leaderboard(results, out) == [str(out / "dfew.md")]
    assert (out / "dfew" / "m1--last_epoch.png").read_bytes()[:4] == b"\x89PNG"
    assert "[m1](dfew/m1--last_epoch.png)" in (out / "dfew.md").read_text()
    assert api.leaderboard(results, out, check=True) == []
    fake_result(results, "m1", 2, 1, 58.0, 60.0)
    assert api.leaderboard(results, out, check=True) == [str(out / "dfew.md")]
    runner = CliRunner()
    res = runner.invoke(cli, ["leaderboard", "--results", str(results), "--out", str(out), "--check"])
    assert res.exit_code == 1 and "stale" in res.output


def test_published_numbers_are_data_with_sources():
    rows = leaderboard.published_rows("mafw")
    assert {r["method"] for r in rows} >= {"DFER-CLIP", "MAE-DFER"}
    assert all(r["source"] for r in rows)
    dfer = next(r for r in rows if r["method"] == "DFER-CLIP")
    assert (dfer["uar"], dfer["war"]) == (pytest.approx(39.89), pytest.approx(52.55))
