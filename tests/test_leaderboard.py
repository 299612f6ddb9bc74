"""Leaderboards: rows from valid result files only, their statistics, reported rows with sources, pages."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image

from dferbench import api
from dferbench.cli import cli
from dferbench.report import leaderboard, metrics, rowstats, stats
from dferbench.run.results import UnitKey, predictions_csv, save_unit

REPO = Path(__file__).resolve().parents[1]
CLASSES = ["a", "b", "c"]


def write_unit(root: Path, run_name: str, fold: int, seed: int, y_true, y_pred, *, selection="last_epoch",
               dataset="dfew", precision="fp32", clip_ids=None, model=None, variant="") -> Path:
    """A complete, valid unit: result JSON and predictions CSV, as the runner writes them."""
    y_true, y_pred = np.asarray(y_true), np.asarray(y_pred)
    classes = CLASSES[: max(3, int(y_true.max()) + 1)]
    clip_ids = clip_ids or [f"f{fold}c{i:03d}" for i in range(len(y_true))]
    path = UnitKey(run_name, dataset, fold, seed, selection).path(root)
    result = {
        "schema": 1, "run_name": run_name, "model": model or run_name.split("[")[0], "variant": variant,
        "dataset": dataset, "fold": fold, "seed": seed, "uar": round(metrics.uar(y_true, y_pred), 4),
        "war": round(metrics.war(y_true, y_pred), 4),
        "per_class_recall": metrics.per_class_recall(y_true, y_pred, len(classes)),
        "confusion": metrics.confusion(y_true, y_pred, len(classes)).tolist(), "classes": classes,
        "n_test": len(y_true), "selection": selection, "num_frames": 16, "image_size": 224, "normalize": "none",
        "family": "text-based", "temporal": True, "config_hash": "h" + run_name, "precision": precision,
    }
    save_unit(path, result, predictions_csv(clip_ids, y_true, np.eye(len(classes))[y_pred], classes))
    return path


def labels(n_per_class: int = 20) -> np.ndarray:
    return np.repeat(np.arange(3), n_per_class)


def predict(rng: np.random.Generator, y: np.ndarray, p: float) -> np.ndarray:
    return np.where(rng.random(len(y)) < p, y, (y + 1) % 3)


def write_row(root: Path, run_name: str, p: float, folds=(1, 2, 3), seeds=(1,), seed: int = 0, **kw) -> None:
    rng = np.random.default_rng(seed)
    y = labels()
    for fold in folds:
        for s in seeds:
            write_unit(root, run_name, fold, s, y, predict(rng, y, p), **kw)


def lines_of(row_text: str) -> list[str]:
    return [c.strip() for c in row_text.split("|")[1:-1]]


def table_row(markdown: str, first_cells: list[str]) -> list[str]:
    for line in markdown.splitlines():
        if line.startswith("|") and lines_of(line)[: len(first_cells)] == first_cells:
            return lines_of(line)
    raise AssertionError(f"no table row starting {first_cells}")


def main_row(markdown: str, method: str, selection: str = "last_epoch") -> list[str]:
    """The cells of ``method``'s line in the first table (columns #, method, UAR, UAR CI, WAR, WAR CI,
    vs best, rank, folds x seeds, selection, family, temporal model)."""
    table = markdown.split("## Reproduced here")[1].split("### Details")[0]
    for line in table.splitlines():
        cells = lines_of(line) if line.startswith("|") else []
        if len(cells) == 12 and cells[1].split("](")[0].lstrip("[") == method and cells[9] == selection:
            return cells
    raise AssertionError(f"no row {method} ({selection})")


def test_mean_and_sample_std_over_units_and_policies_apart(tmp_path):
    y = labels(5)
    write_unit(tmp_path, "m1", 1, 1, y, np.where(np.arange(15) % 5 < 3, y, (y + 1) % 3))  # 60
    write_unit(tmp_path, "m1", 2, 1, y, np.where(np.arange(15) % 5 < 4, y, (y + 1) % 3))  # 80
    write_unit(tmp_path, "m1", 1, 1, y, y, selection="best_on_test")
    write_unit(tmp_path, "m2", 1, 1, y, np.where(np.arange(15) % 5 < 2, y, (y + 1) % 3), precision="bf16")
    write_unit(tmp_path, "m2", 2, 1, y, np.where(np.arange(15) % 5 < 2, y, (y + 1) % 3))
    text, rows = leaderboard.render("dfew", tmp_path)
    by = {(r["run_name"], r["selection"]): r for r in rows}
    assert by[("m1", "last_epoch")]["uar_text"] == "70.00 ± 14.14"
    assert by[("m1", "last_epoch")]["folds"] == [1, 2]
    assert by[("m1", "best_on_test")]["uar_text"] == "100.00"  # never mixed with last_epoch
    assert by[("m1", "last_epoch")]["confusion"].tolist() == [[7, 3, 0], [0, 7, 3], [3, 0, 7]]
    assert by[("m2", "last_epoch")]["precision"] == "bf16+fp32"  # units computed differently: said, not hidden
    assert [(r["run_name"], r["selection"]) for r in rows] == [("m1", "last_epoch"), ("m2", "last_epoch"),
                                                              ("m1", "best_on_test")]
    assert by[("m1", "best_on_test")]["not_worse_than_best"] == "best"  # the best of its own policy
    assert main_row(text, "m1", "best_on_test")[:1] + main_row(text, "m1", "best_on_test")[8:9] == ["1", "1 x 1"]
    brief = leaderboard.summarize("dfew", tmp_path)  # what `dferbench run` prints: the first table alone
    assert "| 1   | m1 " in brief and "### Details" not in brief and "Reported in papers" not in brief


def test_intervals_marks_and_ranks_are_those_of_the_stats_module(tmp_path):
    write_row(tmp_path, "top", 0.85, seed=1)
    write_row(tmp_path, "tied", 0.84, seed=2)
    write_row(tmp_path, "weak", 0.45, seed=3)
    write_row(tmp_path, "two-folds", 0.8, folds=(1, 2), seed=4)
    write_row(tmp_path, "renamed", 0.8, seed=5)
    for path in (tmp_path / "dfew" / "renamed").glob("*.predictions.csv"):  # the same labels, other clips
        path.write_text(path.read_text().replace("\nf", "\nz"))
    write_row(tmp_path, "no-csv", 0.8, seed=6)
    (tmp_path / "dfew" / "no-csv" / "fold2-seed1.predictions.csv").unlink()
    text, rows = leaderboard.render("dfew", tmp_path)
    by = {r["run_name"]: r for r in rows}
    assert by["top"]["not_worse_than_best"] == "best" and by["tied"]["not_worse_than_best"] == "yes"
    assert by["weak"]["not_worse_than_best"] == "no" and by["weak"]["holm_p_vs_best"] < 0.05
    assert by["two-folds"]["not_worse_than_best"] == "not paired: other folds or seeds"
    assert by["renamed"]["not_worse_than_best"] == "not paired: other test clips"
    assert by["renamed"]["rank_interval"] is None and by["renamed"]["uar_ci"] is not None
    assert by["no-csv"]["uar_ci"] is None and "fold2-seed1.predictions.csv: missing" in by["no-csv"]["_stats_note"]
    assert "- no-csv (last_epoch): no statistics:" in text  # said on the page, not hidden

    from dferbench.report import compare

    units = {name: compare.load_rows(tmp_path, "dfew", [name])[name] for name in ("top", "tied", "weak")}
    for name, u in units.items():  # the numbers `dferbench compare` gives, bit for bit
        assert by[name]["uar_ci"] == stats.row_interval(u, "uar", rowstats.RESAMPLES)
        assert by[name]["war_ci"] == stats.row_interval(u, "war", rowstats.RESAMPLES)
        assert by[name]["_recall"] == stats.per_class_recall_ci(u, 3, rowstats.RESAMPLES)
    p_values = [stats.paired_row_test(units["top"], units[n], "uar", rowstats.RESAMPLES).p_value
                for n in ("tied", "weak")]
    assert [by["tied"]["holm_p_vs_best"], by["weak"]["holm_p_vs_best"]] == stats.holm(p_values)
    assert by["top"]["rank_interval"][0] == 1 and by["weak"]["rank_interval"][0] >= 3

    top = main_row(text, "top")
    assert top[2:7] == [by["top"]["uar_text"], f"[{by['top']['uar_ci'][0]:.2f}, {by['top']['uar_ci'][1]:.2f}]",
                        by["top"]["war_text"], f"[{by['top']['war_ci'][0]:.2f}, {by['top']['war_ci'][1]:.2f}]",
                        "best"]
    assert top[0] == "1" and main_row(text, "weak")[6].startswith("no (p ")
    details = text.split("<details><summary>top (last_epoch)</summary>")[1].split("</details>")[0]
    recall, low, high = by["top"]["_recall"][0]
    assert table_row(details, ["a"]) == ["a", "60", f"{recall:.1f}", f"[{low:.1f}, {high:.1f}]"]  # 20 clips x 3 folds


def test_numbers_do_not_depend_on_the_thread_count():
    """The committed synthetic table computed under 1 and 2 BLAS/OpenMP threads: the same bytes."""
    code = ("import sys; from pathlib import Path; from dferbench.report import leaderboard; "
            "sys.stdout.write(leaderboard.render('synthetic', Path('results'))[0])")
    outputs = []
    for threads in ("1", "2"):
        env = dict(os.environ, OMP_NUM_THREADS=threads, OPENBLAS_NUM_THREADS=threads, MKL_NUM_THREADS=threads)
        done = subprocess.run([sys.executable, "-c", code], cwd=REPO, env=env, capture_output=True, text=True,
                              timeout=300)
        assert done.returncode == 0, done.stderr
        outputs.append(done.stdout)
    assert outputs[0] == outputs[1] and "| 1   | dferclip " in outputs[0]


def test_committed_leaderboards_are_up_to_date():
    assert api.leaderboard(REPO / "results", REPO / "leaderboards", check=True) == []


def test_check_detects_stale_pages_and_build_writes_pngs(tmp_path):
    results, out = tmp_path / "results", tmp_path / "boards"
    write_row(results, "m1", 0.7, folds=(1,))
    written = api.leaderboard(results, out)
    assert written == [str(out / f"{d}.md") for d in ("dfew", "ferv39k", "mafw")]
    png = out / "dfew" / "m1--last_epoch.png"
    assert "[m1](dfew/m1--last_epoch.png)" in (out / "dfew.md").read_text()
    with Image.open(png) as image:
        assert image.size[0] >= 800 and image.size[1] >= 800
    assert api.leaderboard(results, out, check=True) == []
    stamp = png.stat().st_mtime_ns
    api.leaderboard(results, out)
    assert png.stat().st_mtime_ns == stamp  # the same content: not drawn again
    write_row(results, "m1", 0.5, folds=(2,))
    assert api.leaderboard(results, out, check=True) == [str(out / "dfew.md")]
    res = CliRunner().invoke(cli, ["leaderboard", "--results", str(results), "--out", str(out), "--check"])
    assert res.exit_code == 1 and "stale" in res.output
    api.leaderboard(results, out)
    assert png.stat().st_mtime_ns != stamp
    write_row(results, "m2", 0.5, folds=(1,))
    api.leaderboard(results, out)
    for path in (results / "dfew" / "m1").iterdir():
        path.unlink()
    api.leaderboard(results, out)
    assert sorted(p.name for p in (out / "dfew").iterdir()) == ["m2--last_epoch.png"]  # no stale figure left
    assert not list(out.rglob("*.tmp"))


def test_writes_are_atomic(tmp_path, monkeypatch):
    results, out = tmp_path / "results", tmp_path / "boards"
    write_row(results, "m1", 0.7, folds=(1,))
    api.leaderboard(results, out, ["dfew"])
    before = {p: p.read_bytes() for p in out.rglob("*") if p.is_file()}
    write_row(results, "m1", 0.3, folds=(2,))
    save = Image.Image.save

    def full_disk(image, target, *args, **kwargs):
        if not isinstance(target, (str, os.PathLike)):  # matplotlib drawing into memory
            return save(image, target, *args, **kwargs)
        Path(target).write_bytes(b"\x89PNG partial")
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(Image.Image, "save", full_disk)
    with pytest.raises(OSError):
        api.leaderboard(results, out, ["dfew"])
    png = out / "dfew" / "m1--last_epoch.png"
    assert png.read_bytes() == before[png]  # the old figure, whole
    assert not list(out.rglob("*.tmp"))


def test_out_inside_results_is_no_dataset(tmp_path):
    results = tmp_path / "runs"
    write_row(results, "m1", 0.7, folds=(1,), dataset="synthetic")
    runner = CliRunner()
    for _ in range(2):
        res = runner.invoke(cli, ["leaderboard", "--results", str(results), "--out", str(results / "leaderboards")])
        assert res.exit_code == 0, res.output
    assert not (results / "leaderboards" / "leaderboards.md").exists()
    res = runner.invoke(cli, ["leaderboard", "--results", str(results), "--out", str(results / "leaderboards"),
                              "--check"])
    assert res.exit_code == 0 and "up to date" in res.output


def test_an_unknown_dataset_is_an_error_and_writes_nothing(tmp_path):
    write_row(tmp_path / "r", "m1", 0.7, folds=(1,))
    res = CliRunner().invoke(cli, ["leaderboard", "--results", str(tmp_path / "r"), "--out", str(tmp_path / "o"),
                                   "--dataset", "dfwe"])
    assert res.exit_code != 0 and "Did you mean 'dfew'?" in res.output and "Traceback" not in res.output
    assert not (tmp_path / "o").exists()


def _edit(key, value):
    def edit(result):
        result[key] = value
        return json.dumps(result)
    return edit


# (name, how the valid file is spoilt, words the one-line problem must contain)
BAD = [
    ("truncated", lambda r: json.dumps(r)[:200], "not valid JSON"),
    ("empty", lambda r: "", "empty file"),
    ("binary", lambda r: b"\xff\xfe\x00garbage", "not UTF-8"),
    ("list", lambda r: json.dumps([r]), "the top level is list, not an object"),
    ("old schema", _edit("schema", 0), "schema 0"),
    ("uar text", _edit("uar", "abc"), "uar must be a number in [0, 100], got 'abc'"),
    ("uar huge", _edit("uar", 1e9), "uar must be a number in [0, 100]"),
    ("uar negative", _edit("uar", -50), "uar must be a number in [0, 100], got -50"),
    ("uar null", _edit("uar", None), "uar must be a number in [0, 100], got None"),
    ("uar edited", _edit("uar", 99.0), "uar 99.0 is not that of its confusion matrix"),
    ("confusion text", _edit("confusion", "x"), "confusion must be a 3 x 3 matrix"),
    ("confusion negative", _edit("confusion", [[-1, 0, 0], [0, 1, 0], [0, 0, 1]]), "3 x 3 matrix of non-negative integers"),
    ("fold text", _edit("fold", "one"), "fold must be an integer >= 1, got 'one'"),
    ("classes", _edit("classes", ["a", "a", "b"]), "distinct class names"),
    ("other dataset", _edit("dataset", "mafw"), "dataset is 'mafw'"),
    ("n_test", _edit("n_test", 7), "n_test is 7"),
    ("moved", _edit("fold", 3), "belongs at"),
]


@pytest.mark.parametrize("name,spoil,problem", BAD, ids=[b[0] for b in BAD])
def test_invalid_result_files_are_refused_and_named(tmp_path, name, spoil, problem):
    results, out = tmp_path / "results", tmp_path / "boards"
    write_row(results, "m1", 0.7, folds=(1, 2))
    bad = results / "dfew" / "m1" / "fold2-seed1.json"
    spoilt = spoil(json.loads(bad.read_text()))
    bad.write_bytes(spoilt if isinstance(spoilt, bytes) else spoilt.encode())
    runner = CliRunner()
    res = runner.invoke(cli, ["leaderboard", "--results", str(results), "--out", str(out)])
    assert res.exit_code != 0 and isinstance(res.exception, SystemExit) and "Traceback" not in res.output
    named = [line for line in res.output.splitlines() if str(bad) in line]
    assert len(named) == 1 and problem in named[0], res.output
    assert "1 invalid result file;" in res.output and "--skip-invalid" in res.output
    assert not out.exists()  # nothing written

    res = runner.invoke(cli, ["leaderboard", "--results", str(results), "--out", str(out), "--skip-invalid"])
    assert res.exit_code == 0, res.output
    assert f"skipped {bad}: " in res.output and "skipped 1 invalid result file" in res.output
    page = (out / "dfew.md").read_text()
    assert "**Built without 1 invalid result file**" in page and "- dfew/m1/fold2-seed1.json: " in page
    assert main_row(page, "m1")[8] == "1 x 1"  # the valid unit still counts


def test_files_next_to_a_result_are_not_results(tmp_path):
    write_row(tmp_path, "m1", 0.7, folds=(1,))
    unit = tmp_path / "dfew" / "m1"
    (unit / "fold1-seed1.checkpoint.json").write_text('{"classes": ["a"]}')  # a checkpoint's sidecar
    (unit / "fold1-seed1.json.invalid").write_text("{")  # moved aside by `dferbench run`
    (unit / ".fold1-seed1.json.x1.tmp").write_text("")
    (unit / "fold2-seed1.state").mkdir()
    (unit / "fold2-seed1.state" / "fold2-seed1.json").write_text("[]")  # inside a hidden or state folder
    (tmp_path / "dfew" / ".trash").mkdir()
    (tmp_path / "dfew" / ".trash" / "fold3-seed1.json").write_text("[]")
    text, rows = leaderboard.render("dfew", tmp_path)
    assert [r["folds"] for r in rows] == [[1]]


def test_every_invalid_file_of_every_dataset_is_listed_at_once(tmp_path):
    write_row(tmp_path, "m1", 0.7, folds=(1, 2))
    write_row(tmp_path, "m1", 0.7, folds=(1,), dataset="mafw")
    (tmp_path / "dfew" / "m1" / "fold1-seed1.json").write_text("{")
    (tmp_path / "dfew" / "m1" / "fold2-seed1.json").write_text("")
    (tmp_path / "mafw" / "m1" / "fold1-seed1.json").write_text("[]")
    res = CliRunner().invoke(cli, ["leaderboard", "--results", str(tmp_path), "--out", str(tmp_path / "o")])
    assert res.exit_code != 0 and "3 invalid result files;" in res.output
    assert len([line for line in res.output.splitlines() if line.startswith(f"  {tmp_path}")]) == 3


def test_reported_rows_have_precise_sources_backbones_and_modalities():
    entries = leaderboard.published_rows()
    assert {e["dataset"] for e in entries} == {"dfew", "ferv39k", "mafw"}
    for e in entries:
        assert set(e) >= {"method", "dataset", "uar", "war", "backbone", "modality", "source"}, e
        assert e["modality"] in ("visual", "audio-visual") and 0 < e["war"] <= 100 and 0 < e["uar"] <= 100
        assert "survey" not in e["source"].lower()
        assert ("Table" in e["source"] or "table" in e["source"] or "README" in e["source"]
                or ".png" in e["source"]), e  # a paper's table or a repository file
    dfer = {e["dataset"]: (e["uar"], e["war"]) for e in entries if e["method"] == "DFER-CLIP"}
    assert dfer == {"dfew": (59.61, 71.25), "ferv39k": (41.27, 51.65), "mafw": (39.89, 52.55)}
    assert any(e["modality"] == "audio-visual" for e in entries)


def test_pages_of_reported_datasets_say_nothing_is_reproduced_yet(tmp_path):
    (tmp_path / "results").mkdir()
    api.leaderboard(tmp_path / "results", tmp_path / "o")
    page = (tmp_path / "o" / "mafw.md").read_text()
    assert "None has been produced here yet." in page
    head = table_row(page, ["method"])
    assert head == ["method", "UAR", "WAR", "backbone", "modality", "selection", "source"]
    dfer = table_row(page, ["DFER-CLIP"])
    assert dfer[1:7] == ["39.89", "52.55", "CLIP ViT-B/32", "visual", "best_on_test", "[1]"]
    assert "1. DFER-CLIP paper (Zhao & Patras, BMVC 2023, arXiv:2308.13382)" in page


def test_a_reproduced_row_is_set_against_its_reported_number(tmp_path):
    y = labels(100)
    rng = np.random.default_rng(0)
    for fold in (1, 2):
        write_unit(tmp_path, "dferclip", fold, 1, y, predict(rng, y, 0.6), selection="best_on_test")
        write_unit(tmp_path, "dferclip[text=class-names]", fold, 1, y, predict(rng, y, 0.9),
                   selection="best_on_test", variant="text=class-names")
    text, rows = leaderboard.render("dfew", tmp_path)
    row = next(r for r in rows if r["run_name"] == "dferclip")
    section = text.split("### Reproduced vs reported")[1].split("## Reported in papers")[0]
    uar = table_row(section, ["dferclip", "DFER-CLIP", "UAR"])
    low, high = row["uar_ci"]
    assert uar[3:7] == [f"{row['uar']:.2f} [{low:.2f}, {high:.2f}]", "59.61", f"{row['uar'] - 59.61:+.2f}",
                        "yes" if low <= 59.61 <= high else "no"]
    assert uar[7] == "best_on_test / best_on_test"
    assert "class-names" not in section  # a variant is not the published method
