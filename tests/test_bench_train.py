"""``dferbench bench train`` on the CPU: both modes side by side, and the accuracy check."""

from __future__ import annotations

import json
import subprocess
import sys

from dferbench.tools import bench_accuracy as ba
from dferbench.tools import bench_train as bt


def test_bench_train_prints_both_modes_side_by_side(tmp_path):
    # A subprocess, as a user runs it (an in-process CliRunner call would also leave click's
    # cached help options behind for the docs test).
    out = tmp_path / "bench.json"
    result = subprocess.run([sys.executable, "-m", "dferbench", "bench", "train", "--batch-size", "2", "--num-frames", "4",
                             "--steps", "2", "--warmup", "1", "--prefetch", "1", "--root", str(tmp_path / "frames"),
                             "--json", str(out)],
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    lines = [ln for ln in result.stdout.splitlines() if ln.startswith("|")]
    assert "clips_per_s" in lines[0] and "peak_mem_mb" in lines[0]
    assert [ln.split("|")[1].strip() for ln in lines[2:]] == ["reference", "fast"]
    report = json.loads(out.read_text())
    reference, fast = report["timing"]
    assert reference["pipeline"] == "reference" and fast["pipeline"] == "cpu"
    assert reference["prefetch"] == 0 and fast["prefetch"] == 1  # the authors' loop never runs ahead
    assert reference["precision"] == fast["precision"] == "fp32"  # bf16 is for CUDA
    assert reference["speedup"] == 1.0 and fast["clips_per_s"] > 0 and fast["peak_mem_mb"] > 0
    assert report["environment"]["device"] == "cpu"
    # same initialisation, same batches, same arithmetic on the CPU: the same loss to rounding
    assert abs(reference["final_loss"] - fast["final_loss"]) < 0.05 * abs(reference["final_loss"]) + 1e-3


def test_model_only_modes_need_no_data(tmp_path):
    settings = bt.defaults("cpu")
    settings.batch_size, settings.num_frames, settings.steps, settings.warmup = 2, 2, 1, 0
    settings.clip_model = "dferbench-test-tiny"
    settings.modes = ["model-only-fp32", "model-only-bf16"]
    rows = bt.benchmark_training(settings, root=tmp_path)
    assert [r["pipeline"] for r in rows] == ["none", "none"]


def test_a_failing_mode_costs_only_its_own_row(tmp_path, monkeypatch):
    real = bt.run_mode

    def run_mode(name, settings, records):
        if name == "model-only-fp32":
            raise RuntimeError("CUDA error: out of memory")
        return real(name, settings, records)

    monkeypatch.setattr(bt, "run_mode", run_mode)
    settings = bt.defaults("cpu")
    settings.batch_size, settings.num_frames, settings.steps, settings.warmup = 2, 2, 1, 0
    settings.clip_model = "dferbench-test-tiny"
    settings.modes = ["model-only-bf16", "model-only-fp32", "model-only-bf16"]
    saved = []
    rows = bt.benchmark_training(settings, root=tmp_path, on_row=lambda rows: saved.append([r["mode"] for r in rows]))
    assert saved == [["model-only-bf16"], ["model-only-bf16", "model-only-fp32"], settings.modes]
    assert rows[1]["error"] == "RuntimeError: CUDA error: out of memory" and "clips_per_s" not in rows[1]
    assert rows[0]["speedup"] == 1.0 and rows[2]["clips_per_s"] > 0
    assert "| error" in bt.timing_table(rows).splitlines()[0]


def test_bench_train_cli_keeps_what_ran_and_fails_loudly(tmp_path):
    out = tmp_path / "bench.json"
    result = subprocess.run([sys.executable, "-m", "dferbench", "bench", "train", "--steps", "1", "--warmup", "0",
                             "--modes", "model-only-fp32", "--clip-model", "no-such-clip", "--root",
                             str(tmp_path / "frames"), "--json", str(out)], capture_output=True, text=True, timeout=300)
    assert result.returncode == 1
    assert "mode(s) model-only-fp32 failed" in result.stderr and "no-such-clip" in result.stdout
    assert "no-such-clip" in json.loads(out.read_text())["timing"][0]["error"]


def test_accuracy_comparison_runs_both_modes_on_the_same_clips(tmp_path):
    settings = ba.CompareSettings(num_clips=35, epochs=1, seeds=[1], num_frames=4, batch_size=8,
                                  clip_model="dferbench-test-tiny", render_size=32, pretrained="auto")
    rows = ba.compare_training(settings, root=tmp_path)
    assert [(r["mode"], r["seed"]) for r in rows] == [("reference", 1), ("fast", 1)]
    assert rows[0]["weights"] == "random"  # auto: only dferbench-tiny has shipped weights
    summary = ba.summarize_accuracy(rows)
    assert [s["mode"] for s in summary] == ["reference", "fast"]
    assert "war_gap_vs_reference" in summary[1]
    # 7 test clips; the two fp32 CPU pipelines differ by at most a grey level per pixel
    assert abs(summary[1]["war_gap_vs_reference"]) <= 100 * 2 / 7
