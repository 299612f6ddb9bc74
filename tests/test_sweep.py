"""Sweeps: the unit product, skipping finished units, and the local executor end to end."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from dferbench import api
from dferbench.run import sweep
from dferbench.errors import DferbenchError

SMALL = ["data.num_clips=35"]  # the synthetic minimum: 7 classes x 5 folds


def test_units_are_the_product_and_finished_ones_are_skipped(tmp_path):
    plan = sweep.plan_sweep(["zeroshot-clip", "dferclip"], ["synthetic"], folds=[1, 2], seeds=[1, 2],
                            overrides=SMALL, output=tmp_path, device="cpu")
    assert len(plan.units) == 8 and not plan.done
    assert {(u.model, u.fold, u.seed) for u in plan.units} == {
        (m, f, s) for m in ("zeroshot-clip", "dferclip") for f in (1, 2) for s in (1, 2)}
    unit = plan.units[0]
    argv = unit.argv()
    assert argv[1:4] == ["-m", "dferbench", "run"] and "--no-leaderboard" in argv
    assert argv[argv.index("--folds") + 1] == str(unit.fold) and argv[argv.index("--seeds") + 1] == str(unit.seed)
    # folds default to the dataset's, seeds to the preset's
    plan = sweep.plan_sweep(["zeroshot-clip"], ["synthetic"], overrides=SMALL, output=tmp_path)
    assert [(u.fold, u.seed) for u in plan.units] == [(f, 1) for f in range(1, 6)]
    with pytest.raises(DferbenchError):
        sweep.plan_sweep(["no-such-model"], ["synthetic"], output=tmp_path)
    with pytest.raises(DferbenchError, match="unknown executor"):
        sweep.sweep(["zeroshot-clip"], ["synthetic"], executor="k8s", output=tmp_path)


def test_local_executor_writes_the_results_a_run_writes_then_resumes(tmp_path):
    out = tmp_path / "results"
    rows = sweep.sweep(["zeroshot-clip"], ["synthetic"], folds=[1, 2], overrides=SMALL, output=out, device="cpu",
                       executor="local", jobs=2, echo=lambda m: None)
    assert [r["status"] for r in rows] == ["done", "done"]
    files = sorted(p.relative_to(out).as_posix() for p in out.rglob("fold*.json"))
    assert files == ["synthetic/zeroshot-clip-data.num_clips-35/fold1-seed1.json",
                     "synthetic/zeroshot-clip-data.num_clips-35/fold2-seed1.json"]
    # the same file `dferbench run` writes for that unit: the run skips it
    run = api.run("zeroshot-clip", "synthetic", folds=[2], overrides=SMALL, output=out, device="cpu",
                  echo=lambda m: None)
    assert run[0]["finished_at"] == json.loads((out / files[1]).read_text())["finished_at"]
    # resume: nothing left to run; a new fold is the only unit submitted
    rows = sweep.sweep(["zeroshot-clip"], ["synthetic"], folds=[1, 2], overrides=SMALL, output=out, device="cpu",
                       echo=lambda m: None)
    assert [r["status"] for r in rows] == ["skipped (result exists)"] * 2
    plan = sweep.plan_sweep(["zeroshot-clip"], ["synthetic"], folds=[1, 2, 3], overrides=SMALL, output=out)
    assert [u.fold for u in plan.units] == [3] and len(plan.done) == 2
    assert api.leaderboard(out, tmp_path / "boards", ["synthetic"], images=False)


def _cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "dferbench", *args], capture_output=True, text=True, timeout=300)


def test_sweep_cli_dry_run_and_failures(tmp_path):
    result = _cli("sweep", "-m", "zeroshot-clip", "-d", "synthetic", "--folds", "1,2", "--set", "data.num_clips=35",
                  "-o", str(tmp_path), "--dry-run")
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stdout.count("planned") == 2 and "dferbench run --model zeroshot-clip" in result.stdout
    result = _cli("sweep", "-m", "zeroshot-clip", "-d", "synthetic", "--folds", "1", "--set", "data.num_clips=35",
                  "--set", "model.text=no-such-text-set", "-o", str(tmp_path), "--device", "cpu")
    assert result.returncode == 2 and "model.text must be a registered text set" in result.stderr  # before any unit
    incomplete = tmp_path / "descriptors.toml"  # a descriptor file without a sentence per class: found in the unit
    incomplete.write_text('[descriptors]\nhappiness = "a smile"\n')
    result = _cli("sweep", "-m", "zeroshot-clip", "-d", "synthetic", "--folds", "1", "--set", "data.num_clips=35",
                  "--set", f"model.text=file:{incomplete}", "-o", str(tmp_path), "--device", "cpu")
    assert result.returncode == 1 and "failed" in result.stdout


def test_units_carry_absolute_paths_and_their_share_of_cpus(tmp_path, monkeypatch):
    # a Ray worker or a compute node resolves relative paths in a directory of its own
    monkeypatch.chdir(tmp_path)
    (tmp_path / "mine.toml").write_text("[train]\nepochs = 1\n")
    unit = sweep.plan_sweep(["zeroshot-clip"], ["synthetic"], folds=[1], overrides=SMALL, output="results",
                            config="mine.toml").units[0]
    assert unit.output == str(tmp_path / "results") and unit.config == str(tmp_path / "mine.toml")
    shared = sweep.with_workers(unit, 7)
    assert shared.overrides[-1] == "data.workers=7" and shared.label == unit.label
    assert sweep.with_workers(sweep.with_workers(unit, 3), 7).overrides.count("data.workers=3") == 1


def test_ray_requests_that_no_node_can_meet_are_errors_not_hangs():
    notes = []
    cpu_only = [{"Alive": True, "Resources": {"CPU": 16.0}}, {"Alive": False, "Resources": {"CPU": 64.0, "GPU": 8.0}}]
    assert sweep._feasible_ray_request(cpu_only, 1, 8, False, notes.append) == 0  # runs on CPUs, and says so
    assert notes == ["note  the Ray cluster has no GPU: the units run on CPUs"]
    with pytest.raises(DferbenchError, match="no node has 1 GPU"):
        sweep._feasible_ray_request(cpu_only, 1, 8, True, notes.append)  # --device cuda asked for
    with pytest.raises(DferbenchError, match=r"no node has 32 CPUs for one task \(at most 16\)"):
        sweep._feasible_ray_request(cpu_only, 0, 32, False, notes.append)
    gpu_node = [{"Alive": True, "Resources": {"CPU": 64.0, "GPU": 8.0}}]
    assert sweep._feasible_ray_request(gpu_node, 1, 8, False, notes.append) == 1


def test_slurm_units_still_queued_are_not_submitted_again(tmp_path, monkeypatch):
    plan = sweep.plan_sweep(["zeroshot-clip"], ["synthetic"], folds=[1, 2], overrides=SMALL, output=tmp_path)
    first, second = plan.units
    log_dir = tmp_path / ".sweep" / "slurm"
    sweep.record_in_flight(log_dir, {first.slug: "4240_0", second.slug: "4240_1"})
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    squeue = bin_dir / "squeue"
    squeue.write_text("#!/bin/sh\necho 4240_0\necho 4371\n")  # 4240_1 has finished (or failed)
    squeue.chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_dir}:{__import__('os').environ['PATH']}")
    rows = sweep.sweep(["zeroshot-clip"], ["synthetic"], folds=[1, 2], overrides=SMALL, output=tmp_path,
                       executor="slurm", dry_run=True, echo=lambda m: None)
    assert [(r["unit"], r["status"]) for r in rows] == [(first.label, "in flight (job 4240_0)"),
                                                         (second.label, "planned")]
