"""The slurm (submitit's local cluster) and ray (a local Ray instance) sweep executors.

Each needs its optional dependency (``dferbench[slurm]``, ``dferbench[ray]``); the test
is skipped, saying so, where it is not installed.
"""

from __future__ import annotations

import json

import pytest

from dferbench.run import sweep

SMALL = ["data.num_clips=35"]


def _check_results(out, folds):
    files = sorted(out.rglob("fold*-seed1.json"))
    assert [json.loads(f.read_text())["fold"] for f in files] == folds
    for f in files:
        result = json.loads(f.read_text())
        assert result["model"] == "zeroshot-clip" and result["n_test"] == 7
        assert f.with_suffix(".predictions.csv").exists()


def test_slurm_executor_runs_a_job_array_locally(tmp_path):
    pytest.importorskip("submitit", reason="the slurm executor needs submitit (pip install 'dferbench[slurm]')")
    out = tmp_path / "results"
    rows = sweep.sweep(["zeroshot-clip"], ["synthetic"], folds=[1, 2], overrides=SMALL, output=out, device="cpu",
                       executor="slurm", jobs=2, cluster="local", time_min=10, cpus_per_task=1,
                       echo=lambda m: None)
    assert [r["status"] for r in rows] == ["done", "done"], rows
    assert all(r["job"] for r in rows)
    _check_results(out, [1, 2])
    again = sweep.sweep(["zeroshot-clip"], ["synthetic"], folds=[1, 2], overrides=SMALL, output=out,
                        executor="slurm", cluster="local", echo=lambda m: None)
    assert [r["status"] for r in again] == ["skipped (result exists)"] * 2  # nothing submitted


def test_ray_executor_runs_tasks_on_a_local_instance(tmp_path):
    pytest.importorskip("ray", reason="the ray executor needs ray (pip install 'dferbench[ray]')")
    out = tmp_path / "results"
    rows = sweep.sweep(["zeroshot-clip"], ["synthetic"], folds=[1, 2], overrides=SMALL, output=out, device="cpu",
                       executor="ray", num_cpus=2, echo=lambda m: None)
    assert [r["status"] for r in rows] == ["done", "done"], rows
    _check_results(out, [1, 2])
