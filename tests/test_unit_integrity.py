"""What a run does with what it finds and what goes wrong: failing units, invalid result
files, locks held by other runs, full disks, file modes, files a unit writes."""

from __future__ import annotations

import errno
import json
import os
import signal
import socket
import subprocess
import sys
import time

import pytest
from click.testing import CliRunner

from dferbench import api
from dferbench.cli import cli
from dferbench.errors import UnitsFailed
from dferbench.run import locks
from dferbench.run.results import UnitKey, read_result, validate_result

from conftest import ToyMethod

TOY = ["run", "-m", "toy-model", "-d", "toy", "--no-leaderboard"]


def run_toy(out, **kw):
    return api.run("toy-model", "toy", output=out, echo=lambda m: None, **kw)


def unit_path(out, fold=1, seed=1):
    return out / "toy" / "toy-model" / f"fold{fold}-seed{seed}.json"


# ----------------------------------------------------------------- a failing unit


def test_a_failing_unit_is_recorded_and_the_others_go_on(toy_plugin, tmp_path):
    res = CliRunner().invoke(cli, TOY + ["-o", str(tmp_path), "--set", "model.error_on_fold=2"])
    assert res.exit_code == 1, res.output
    plugin_failure = ("model 'toy-model' fit failed (plugin 'undo-toy', not from an installed distribution): "
                      "ValueError: simulated bug in a model plugin")  # the failure boundary names the plugin
    assert f"failed toy-model on toy fold 2 seed 1: {plugin_failure}" in res.output
    last = res.output.strip().splitlines()[-1]
    assert last.startswith(f"Error: 2 units finished, 1 failed: toy-model on toy fold 2 seed 1 ({plugin_failure}")
    assert "Traceback" not in res.output
    assert read_result(unit_path(tmp_path, 1))[0] and read_result(unit_path(tmp_path, 3))[0]
    assert not unit_path(tmp_path, 2).exists()  # never counted as finished
    failure = json.loads(unit_path(tmp_path, 2).with_suffix(".failed.json").read_text())
    assert failure["error"].startswith(plugin_failure) and failure["fold"] == 2
    assert failure["error_type"] == "PluginFailure" and "ValueError: simulated bug" in failure["traceback"]
    assert "Traceback" in failure["traceback"] and failure["host"] == socket.gethostname()
    assert not list(tmp_path.rglob("*.lock"))

    ToyMethod.calls.clear()  # the same command again: only the failed unit runs, and now it works
    res = CliRunner().invoke(cli, TOY + ["-o", str(tmp_path)])
    assert res.exit_code == 0 and ToyMethod.calls == ["fit"]
    assert read_result(unit_path(tmp_path, 2))[0] and not unit_path(tmp_path, 2).with_suffix(".failed.json").exists()


def test_the_api_raises_after_every_unit_with_the_finished_results(toy_plugin, tmp_path):
    with pytest.raises(UnitsFailed) as err:
        run_toy(tmp_path, overrides=["model.error_on_fold=1"])
    assert [r["fold"] for r in err.value.results] == [2, 3] and len(err.value.failed) == 1


# ----------------------------------------------------------------- results on read

GOOD = {"schema": 1, "run_name": "m", "model": "m", "variant": "", "dataset": "d", "fold": 1, "seed": 1,
        "uar": 50.0, "war": 60.0, "classes": ["a", "b"], "confusion": [[2, 1], [0, 3]], "n_test": 6,
        "selection": "last_epoch", "config_hash": "abc", "num_frames": 16, "image_size": 224, "normalize": "none"}


@pytest.mark.parametrize("change, problem", [
    ({"uar": 1e9}, "uar must be a number in [0, 100], got 1000000000.0"),
    ({"uar": -50}, "uar must be a number in [0, 100], got -50"),
    ({"war": None}, "war must be a number in [0, 100], got None"),
    ({"uar": "abc"}, "uar must be a number in [0, 100], got 'abc'"),
    ({"uar": True}, "uar must be a number in [0, 100], got True"),
    ({"uar": float("nan")}, "uar must be a number in [0, 100], got nan"),
    ({"confusion": "x"}, "confusion must be a 2 x 2 matrix of non-negative integers"),
    ({"confusion": [[2, 1], [0]]}, "confusion must be a 2 x 2 matrix"),
    ({"confusion": [[2, -1], [0, 3]]}, "confusion must be a 2 x 2 matrix of non-negative integers"),
    ({"confusion": [[2, 1.5], [0, 3]]}, "confusion must be a 2 x 2 matrix of non-negative integers"),
    ({"n_test": 7}, "the confusion matrix counts 6 clips but n_test is 7"),
    ({"fold": "one"}, "fold must be an integer >= 1, got 'one'"),
    ({"fold": 0}, "fold must be an integer >= 1, got 0"),
    ({"seed": 1.0}, "seed must be an integer >= 0, got 1.0"),
    ({"classes": "ab"}, "classes must be a non-empty list of distinct class names, got 'ab'"),
    ({"classes": ["a", 2]}, "classes must be a non-empty list of distinct class names"),
    ({"schema": 7}, "unknown schema 7 (this dferbench reads schema 1)"),
    ({"run_name": ""}, "run_name must be a non-empty string, got ''"),
    ({"config": []}, "config must be an object, got list"),
])
def test_validate_result_names_each_problem(change, problem):
    assert validate_result(GOOD) == []
    assert any(problem in p for p in validate_result({**GOOD, **change})), validate_result({**GOOD, **change})


def test_validate_result_against_the_dataset_classes():
    assert validate_result(GOOD, ["a", "b"]) == []
    assert validate_result(GOOD, ["a", "c"]) == ["its classes ['a', 'b'] are not the dataset's ['a', 'c']"]
    assert validate_result([GOOD]) == ["the top level is list, not an object"]


def test_committed_results_are_valid():
    from pathlib import Path

    from dferbench.run.results import iter_results

    assert len(list(iter_results(Path(__file__).parents[1] / "results"))) >= 100  # raises on any invalid one


@pytest.mark.parametrize("content, said", [
    ("", "empty file"),
    ('{"schema": 1, "uar": 5', "not valid JSON"),
    ("[1, 2]", "the top level is list, not an object"),
    ("UAR", "not valid JSON"),
])
def test_run_moves_an_invalid_result_aside_and_redoes_the_unit(toy_plugin, tmp_path, content, said):
    run_toy(tmp_path, folds=[1])
    path = unit_path(tmp_path)
    path.write_text(content)
    messages, ToyMethod.calls[:] = [], []
    result = api.run("toy-model", "toy", output=tmp_path, folds=[1], echo=messages.append)[0]
    assert ToyMethod.calls == ["fit"] and read_result(path)[0]["war"] == result["war"]
    assert path.with_name(path.name + ".invalid").read_text() == content
    line = next(m for m in messages if m.startswith("invalid "))
    assert line == f"invalid {path}: {said}" + line.split(said, 1)[1] and "moved to fold1-seed1.json.invalid" in line


def test_run_redoes_a_result_whose_numbers_are_impossible(toy_plugin, tmp_path):
    run_toy(tmp_path, folds=[1])
    path = unit_path(tmp_path)
    path.write_text(json.dumps({**json.loads(path.read_text()), "uar": 1e9}))
    messages = []
    api.run("toy-model", "toy", output=tmp_path, folds=[1], echo=messages.append)
    assert any("uar must be a number in [0, 100], got 1000000000.0; moved to" in m for m in messages)
    assert read_result(path)[0]["uar"] <= 100


def test_leaderboards_written_inside_the_results_are_not_a_dataset(toy_plugin, tmp_path):
    run_toy(tmp_path, folds=[1])
    args = ["leaderboard", "--results", str(tmp_path), "--out", str(tmp_path / "leaderboards")]
    for _ in range(2):
        res = CliRunner().invoke(cli, args)
        assert res.exit_code == 0, res.output
    pages = sorted(p.name for p in (tmp_path / "leaderboards").glob("*.md"))
    assert "toy.md" in pages and "leaderboards.md" not in pages
    assert CliRunner().invoke(cli, args + ["--check"]).exit_code == 0


# ----------------------------------------------------------------- locks


def test_a_unit_locked_by_a_live_run_is_left_to_it(toy_plugin, tmp_path):
    lock = unit_path(tmp_path, 2).with_suffix(".lock")
    lock.parent.mkdir(parents=True)
    lock.write_text(json.dumps({"host": socket.gethostname(), "pid": os.getpid(), "started": "now"}))
    messages, ToyMethod.calls[:] = [], []
    results = api.run("toy-model", "toy", output=tmp_path, echo=messages.append)
    assert [r["fold"] for r in results] == [1, 3] and len(ToyMethod.calls) == 2
    assert any(m.startswith(f"busy  toy-model on toy fold 2 seed 1: run by {socket.gethostname()} pid "
                            f"{os.getpid()}") for m in messages)
    assert lock.exists()  # not ours to remove


def test_a_stale_lock_is_broken_with_a_message(toy_plugin, tmp_path):
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    lock = unit_path(tmp_path, 1).with_suffix(".lock")
    lock.parent.mkdir(parents=True)
    lock.write_text(json.dumps({"host": socket.gethostname(), "pid": dead.pid, "started": "earlier"}))
    messages = []
    api.run("toy-model", "toy", output=tmp_path, folds=[1], echo=messages.append)
    assert f"note  broke the stale lock {lock} (process {dead.pid} on this host is gone)" in messages
    assert read_result(unit_path(tmp_path, 1))[0] and not lock.exists()


def test_lock_rules(tmp_path):
    path = tmp_path / "fold1-seed1.lock"
    held = locks.acquire(path, heartbeat=0.05)
    holder = locks.read_lock(path)
    assert holder["pid"] == os.getpid() and holder["host"] == socket.gethostname() and "started" in holder
    assert locks.acquire(path) is None  # held by a live process
    before = path.stat().st_mtime
    time.sleep(0.3)
    assert path.stat().st_mtime > before  # the heartbeat
    held.release()
    assert not path.exists()
    path.write_text(json.dumps({"host": "elsewhere", "pid": 1, "started": "long ago"}))
    assert locks.stale_reason(path, locks.read_lock(path)) is None  # another host, fresh heartbeat: held
    old = time.time() - 2 * locks.STALE_AFTER_S
    os.utime(path, (old, old))
    assert locks.stale_reason(path, locks.read_lock(path)).startswith("no heartbeat from elsewhere pid 1 for")
    said = []
    with locks.acquire(path, echo=said.append):
        assert said and locks.read_lock(path)["pid"] == os.getpid()
    path.write_text("")  # being written by another run: not stale at once
    assert locks.stale_reason(path, locks.read_lock(path)) is None



def test_a_lock_taken_just_before_ctrl_c_is_removed_at_exit(tmp_path):
    # Ctrl-C can land after a lock is taken and before its unit's `with` block starts
    path = tmp_path / "fold2-seed1.lock"
    other = json.dumps({"host": "elsewhere", "pid": 1, "started": "now"})

    def interrupted(then: str = "") -> str:
        code = (f"from pathlib import Path; from dferbench.run import locks\n"
                f"lock = locks.acquire(Path({str(path)!r}))\nassert lock.path.exists()\n{then}\n"
                "raise KeyboardInterrupt\n")
        return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60).stderr

    said = interrupted()
    assert "KeyboardInterrupt" in said and "AssertionError" not in said
    assert not path.exists()
    interrupted(f"lock.path.write_text({other!r})")  # broken as stale and taken by another run meanwhile
    assert path.read_text() == other  # that run's lock stays


SIGNAL_WINDOWS = {  # the call after which the signal lands, and what the process then does
    "lock created": ("os.open", "lock = locks.acquire(path)\nlock.release()"),
    "lock removed": ("locks.read_lock", "lock = locks.acquire(path)\nlock.release()"),
    "temporary created": ("os.open", "with replacing(path) as tmp:\n    tmp.write_text('x')"),
}


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM])
@pytest.mark.parametrize("window", SIGNAL_WINDOWS)
def test_a_signal_inside_creating_or_removing_a_file_leaves_nothing_behind(tmp_path, window, signum):
    # the instants a run's Ctrl-C can hit: just after a lock or temporary file is created,
    # just before a lock is removed (CI once caught the first, leaving fold2-seed1.lock)
    call, then = SIGNAL_WINDOWS[window]
    code = (f"import os, signal; from pathlib import Path\n"
            f"from dferbench.cli import _on_sigterm; from dferbench.files import replacing\n"
            f"from dferbench.run import locks\n"
            f"signal.signal(signal.SIGTERM, _on_sigterm)\n"
            f"real = {call}\n"
            f"def signalling(*args, **kwargs):\n"
            f"    out = real(*args, **kwargs)\n"
            f"    os.kill(os.getpid(), {int(signum)})\n"
            f"    return out\n"
            f"{call} = signalling\n"
            f"path = Path({str(tmp_path / 'fold2-seed1.lock')!r})\n{then}\n")
    said = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60).stderr
    assert ("KeyboardInterrupt" if signum == signal.SIGINT else "Terminated") in said, said
    assert not list(tmp_path.iterdir())


# ----------------------------------------------------------------- disks and modes


def test_result_files_follow_the_umask(toy_plugin, tmp_path):
    old = os.umask(0o022)
    try:
        run_toy(tmp_path, folds=[1])
    finally:
        os.umask(old)
    path = unit_path(tmp_path)
    assert path.stat().st_mode & 0o777 == 0o644
    assert path.with_suffix(".predictions.csv").stat().st_mode & 0o777 == 0o644


def test_a_full_disk_is_one_line_naming_the_file(toy_plugin, tmp_path, monkeypatch):
    import dferbench.run.results as results

    def full(fd):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(results.os, "fsync", full)
    res = CliRunner().invoke(cli, TOY + ["-o", str(tmp_path), "--folds", "1"])
    assert res.exit_code == 2, res.output
    line = res.output.strip().splitlines()[-1]  # the first file written: the training history
    assert line == (f"Error: {unit_path(tmp_path).with_suffix('.history.jsonl')}: No space left on device; free "
                    "some space or write elsewhere (--output)")
    assert not list(tmp_path.rglob("*.tmp")) and not list(tmp_path.rglob("*.lock"))


def test_an_unwritable_or_nearly_full_output_stops_before_a_unit(toy_plugin, tmp_path, monkeypatch):
    import dferbench.run.outputs as runner

    ToyMethod.calls.clear()
    real_mkdir = runner.Path.mkdir

    def denied(self, *args, **kwargs):
        if self == tmp_path / "ro":
            raise PermissionError(errno.EACCES, "Permission denied", str(self))
        return real_mkdir(self, *args, **kwargs)

    monkeypatch.setattr(runner.Path, "mkdir", denied)
    res = CliRunner().invoke(cli, TOY + ["-o", str(tmp_path / "ro")])
    assert res.exit_code == 2 and ToyMethod.calls == []
    assert res.output.strip().splitlines() == [f"Error: {tmp_path / 'ro'}: Permission denied; check its "
                                               "permissions or write elsewhere (--output)"]
    monkeypatch.undo()

    class Usage:
        free = 10 * 2**20

    monkeypatch.setattr(runner.shutil, "disk_usage", lambda path: Usage)
    res = CliRunner().invoke(cli, TOY + ["-o", str(tmp_path / "full")])
    assert res.exit_code == 2 and ToyMethod.calls == []
    assert res.output.strip().splitlines() == [f"Error: {tmp_path / 'full'}: only 10 MiB free, a unit needs at "
                                               "least 64 MiB; free some space or write elsewhere (--output)"]


# ----------------------------------------------------------------- what a unit writes


def test_a_checkpoint_lands_next_to_the_result_and_is_said(tmp_path):
    tiny = ["model.clip_model=dferbench-test-tiny", "model.pretrained=", "data.image_size=32", "data.num_frames=2",
            "data.num_clips=35", "train.epochs=1", "train.batch_size=8", "model.save_checkpoint=true"]
    messages = []
    result = api.run("dferclip", "synthetic", output=tmp_path, folds=[1], overrides=tiny, echo=messages.append)[0]
    checkpoint = UnitKey(result["run_name"], "synthetic", 1, 1).path(tmp_path).with_suffix(".checkpoint.safetensors")
    assert "save_checkpoint" not in result["run_name"]
    assert checkpoint.is_file() and checkpoint.with_suffix(".json").is_file()
    sidecar = checkpoint.with_suffix(".json")
    assert result["fit"]["checkpoint"] == str(checkpoint) and result["files"] == [str(checkpoint), str(sidecar)]
    assert f"wrote {checkpoint}" in messages and f"wrote {sidecar}" in messages
    without = api.run("dferclip", "synthetic", output=tmp_path, folds=[1], overrides=tiny[:-1], echo=messages.append)
    assert without[0]["config_hash"] == result["config_hash"]  # saving a checkpoint is not a new variant
    assert not list(tmp_path.rglob(".work/**/checkpoints"))


def test_a_skipped_unit_says_what_it_did_not_do(tmp_path):
    tiny = ["model.clip_model=dferbench-test-tiny", "model.pretrained=", "data.image_size=32", "data.num_frames=2",
            "data.num_clips=35", "train.epochs=1", "train.batch_size=8"]
    api.run("dferclip", "synthetic", output=tmp_path, folds=[1], overrides=tiny, echo=lambda m: None)
    messages = []
    api.run("dferclip", "synthetic", output=tmp_path, folds=[1], overrides=tiny + ["model.save_checkpoint=true"],
            echo=messages.append)
    skip = next(m for m in messages if m.startswith("skip"))
    assert "made without model.save_checkpoint=true: --rerun" in skip
    assert not list(tmp_path.rglob("*.checkpoint.safetensors"))


def test_committed_results_keep_their_run_names_and_config_hashes():
    """Declaring options (execution settings, files) must not rename a committed row or change
    its hash: CI regenerates results/ and compares the leaderboards byte for byte."""
    from pathlib import Path

    from dferbench.run import runner
    from dferbench.run.results import iter_results

    committed = {(r["dataset"], r["run_name"]): r["config_hash"]
                 for r in iter_results(Path(__file__).parents[1] / "results")}
    planned = {}
    for dataset, suite in (("synthetic", "paper"), ("synthetic-11", "paper"), ("synthetic-wild", "protocols")):
        for model, extra in api.expand(f"suite:{suite}", dataset):
            plan = runner.plan(model, dataset, overrides=extra)
            planned[(dataset, plan.run_name)] = plan.hash
    assert planned == committed


def test_committed_robustness_and_transfer_results_keep_their_config_hashes():
    """The protocol results (scripts/synthetic_table.sh) too: each cell's and transfer unit's
    hash is what its plan gives today, so a rerun resumes them instead of running them again."""
    from pathlib import Path

    from dferbench.run import robustness, transfer
    from dferbench.run.results import iter_results

    planned: dict = {}
    checked = 0
    for r in iter_results(Path(__file__).parents[1] / "results", protocol=None):
        if "protocol" not in r:
            continue
        train = r.get("train_dataset")
        key = (r["dataset"], train, r.get("train_fold"))
        if key not in planned:
            plans = (transfer.plan(m, r["dataset"], train, train_fold=r["train_fold"], overrides=extra) if train
                     else robustness.plan(m, r["dataset"], overrides=extra)
                     for m, extra in api.expand("suite:protocols", train or r["dataset"]))
            planned[key] = {p.run_name: p for p in plans}
        plan = planned[key][r["run_name"]]
        if r["protocol"] == "robustness":
            cell = robustness.CorruptedTest(r["corruption"], r["severity"], r["corruption_seed"])
            assert cell.hash(plan.hash) == r["config_hash"], r["_path"]
        else:
            assert plan.hash == r["config_hash"], r["_path"]
        checked += 1
    assert checked >= 400


def test_variant_names_hold_no_paths_and_no_execution_settings(tmp_path):
    from dferbench.run import runner

    for folder in ("a", "b"):
        (tmp_path / folder).mkdir()
        (tmp_path / folder / "clips.csv").write_text("path,label\nframes/x,happy\n")
    at_a = runner.plan("zeroshot-clip", "custom", overrides=[f"data.file={tmp_path / 'a' / 'clips.csv'}",
                                                            "model.feature_cache=false", "data.workers=2"],
                       weights=False)
    at_b = runner.plan("zeroshot-clip", "custom", overrides=[f"data.file={tmp_path / 'b' / 'clips.csv'}"],
                       weights=False)
    assert at_a.run_name.startswith("zeroshot-clip[data.file=clips.csv#") and str(tmp_path) not in at_a.run_name
    assert (at_a.run_name, at_a.hash) == (at_b.run_name, at_b.hash)  # same file elsewhere, cache off: same unit
    saving = runner.plan("dferclip", "synthetic", overrides=["model.save_checkpoint=true", "train.compile=true",
                                                              "data.prefetch=0", "train.eval_batch_size=4"])
    assert saving.run_name == "dferclip" and saving.hash == runner.plan("dferclip", "synthetic").hash
