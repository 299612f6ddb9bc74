"""Training you can watch: a line per epoch, a progress bar with loss, learning rate and
time left on a terminal, the history as JSON lines as it happens, TensorBoard on request."""

from __future__ import annotations

import copy
import io
import json
import re
import sys

import pytest
import torch

from conftest import MeanBrightness, ToyReader
from dferbench.data.loader import ClipSet
from dferbench.data.records import ClipRecord
from dferbench.errors import DferbenchError
from dferbench.plugin.method import Monitor
from dferbench.run import config as cfg
from dferbench.run import engine
from dferbench.run.progress import progress_enabled
from dferbench.run.training_log import format_duration, format_epoch


def toy_clips(n: int = 21, offset: int = 0) -> ClipSet:
    records = [ClipRecord(f"clip-{i}", f"toy:{i}", 5 + i % 20, i % 3) for i in range(offset, offset + n)]
    return ClipSet("toy", records, ToyReader(), num_frames=4, image_size=8)


def train(monitor: Monitor, epochs: int = 3) -> dict:
    torch.manual_seed(0)
    module = MeanBrightness(3)
    optimizer = torch.optim.SGD(module.parameters(), lr=0.5, momentum=0.9)
    scheduler = torch.optim.lr_scheduler.MultiStepLR(optimizer, [2], gamma=0.1)
    return engine.train_module(module, optimizer, scheduler, toy_clips(), monitor, epochs=epochs, batch_size=4,
                               device="cpu", seed=1)


def test_epoch_line():
    row = {"epoch": 3, "train_loss": 1.23449, "lr": [1e-5], "seconds": 12.34}
    assert format_epoch(row, 50) == "epoch 3/50  loss 1.234  lr 1e-05  12.3 s"
    row.update(lr=[0.01, 1e-5, 0.001], test_uar=41.23, test_war=50.06)
    assert format_epoch(row, 50) == "epoch 3/50  loss 1.234  lr 0.01/1e-05/0.001  test UAR 41.2 WAR 50.1  12.3 s"
    assert format_duration(59.6) == "1:00" and format_duration(3725) == "1:02:05"


def test_a_line_per_epoch_and_the_history_as_it_happens(tmp_path):
    lines: list[str] = []
    history = tmp_path / "fold1-seed1.history.jsonl"

    class Watch(Monitor):
        def log(self, **row):  # the file holds every earlier epoch while the next one trains
            assert [json.loads(x)["epoch"] for x in history.read_text().splitlines()] == \
                list(range(1, row["epoch"]))
            super().log(**row)

    monitor = Watch("best_on_test", test_clips=toy_clips(9, offset=100), echo=lines.append, history_path=history)
    train(monitor)
    assert [line.split("  ")[0] for line in lines] == ["epoch 1/3", "epoch 2/3", "epoch 3/3"]
    assert all("test UAR" in line and line.endswith(" s") for line in lines)
    rows = [json.loads(x) for x in history.read_text().splitlines()]
    assert rows == monitor.history
    assert [r["lr"] for r in rows] == [[0.5], [0.5], [pytest.approx(0.05)]]  # the rate each epoch trained at
    assert all(r["seconds"] > 0 and 0 <= r["test_uar"] <= 100 for r in rows)


def test_last_epoch_never_scores_the_test_clips(tmp_path):
    lines: list[str] = []
    monitor = Monitor("last_epoch", test_clips=None, echo=lines.append)
    train(monitor, epochs=2)
    assert not any("test" in line for line in lines)
    assert all(set(r) == {"epoch", "train_loss", "lr", "seconds"} for r in monitor.history)


def test_progress_bar_shows_loss_lr_and_time_left(monkeypatch):
    stream = io.StringIO()
    monkeypatch.setattr(sys, "stderr", stream)
    train(Monitor("last_epoch", progress=True), epochs=2)
    text = stream.getvalue()
    assert "epoch 2/2" in text and re.search(r"loss [\d.]+  lr 0\.5  eta \d+:\d\d", text)


def test_progress_is_off_without_a_terminal_or_under_ci(monkeypatch):
    class Tty(io.StringIO):
        def isatty(self):
            return True

    monkeypatch.delenv("CI", raising=False)
    monkeypatch.delenv("DFERBENCH_NO_PROGRESS", raising=False)
    monkeypatch.setattr(sys, "stderr", Tty())
    assert progress_enabled()
    monkeypatch.setenv("CI", "true")
    assert not progress_enabled()
    monkeypatch.delenv("CI")
    monkeypatch.setattr(sys, "stderr", io.StringIO())
    assert not progress_enabled()


def test_tensorboard_events(tmp_path):
    pytest.importorskip("tensorboard", reason="pip install 'dferbench[tensorboard]'")
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    train(Monitor("best_on_test", test_clips=toy_clips(9, offset=100), tensorboard_dir=tmp_path / "tb"))
    events = EventAccumulator(str(tmp_path / "tb"))
    events.Reload()
    tags = set(events.Tags()["scalars"])
    assert {"train/loss", "train/lr/0", "test/uar", "test/war", "time/epoch_seconds"} <= tags
    assert [e.step for e in events.Scalars("train/loss")] == [1, 2, 3]


def test_execution_settings_stay_out_of_the_hash_and_a_missing_tensorboard_is_one_line(monkeypatch):
    import importlib.util

    base = copy.deepcopy(cfg.CORE_DEFAULTS)
    changed = cfg.apply_overrides(base, ["train.keep_state=true", "train.save_state=false"])
    assert cfg.config_hash(changed) == cfg.config_hash(base) and cfg.variant_label(changed, base) == ""
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "tensorboard" else real(name, *a))
    with pytest.raises(DferbenchError, match=r"pip install 'dferbench\[tensorboard\]'") as info:
        cfg.validate(cfg.apply_overrides(base, ["train.tensorboard=true"]))
    assert len(str(info.value).splitlines()) == 1


def test_runner_keeps_the_units_files_next_to_its_result(toy_plugin, tmp_path):
    from dferbench.run import runner

    lines: list[str] = []
    plan = runner.plan("toy-model", "toy", folds=[1])
    runner.run_plan(plan, output=tmp_path, echo=lines.append)
    unit = tmp_path / "toy/toy-model"
    assert [json.loads(x)["epoch"] for x in (unit / "fold1-seed1.history.jsonl").read_text().splitlines()] == [1, 2, 3]
    assert not (unit / "fold1-seed1.state.pt").exists()  # removed when the unit finished
    assert [line.split("  ")[0] for line in lines if line.startswith("epoch")] == ["epoch 1/3", "epoch 2/3", "epoch 3/3"]
    kept = runner.plan("toy-model", "toy", folds=[1], overrides=["train.keep_state=true"])
    runner.run_plan(kept, output=tmp_path / "kept", echo=lines.append)
    assert (tmp_path / "kept/toy/toy-model/fold1-seed1.state.pt").is_file()
    off = runner.plan("toy-model", "toy", folds=[1], overrides=["train.save_state=false", "train.keep_state=true"])
    runner.run_plan(off, output=tmp_path / "off", echo=lines.append)
    assert not (tmp_path / "off/toy/toy-model/fold1-seed1.state.pt").exists()
