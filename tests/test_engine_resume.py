"""Units that resume after a kill: the training state saved after every epoch, a rerun that
goes on from it, and, on the CPU, the numbers of a training that was never stopped."""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from conftest import ToyReader
from dferbench.data.loader import ClipSet
from dferbench.data.records import ClipRecord
from dferbench.plugin.method import Monitor
from dferbench.run import engine
from dferbench.run.resume import TrainingState, save_state

ROOT = Path(__file__).resolve().parents[1]


class Stop(Exception):
    """Stands for a kill right after a state was saved."""


class NoisyNet(nn.Module):
    """Draws from every global generator the state must carry: torch (dropout), numpy
    and Python (noise on the features); a frozen layer the state must leave out."""

    def __init__(self, n_classes: int = 3):
        super().__init__()
        self.frozen = nn.Linear(1, 4).requires_grad_(False)
        self.head = nn.Linear(4, n_classes)
        self.drop = nn.Dropout(0.3)
        self.register_buffer("calls", torch.zeros((), dtype=torch.int64))

    def forward(self, video: torch.Tensor) -> torch.Tensor:  # [B, T, 3, H, W] -> [B, C]
        x = self.frozen(video.mean(dim=(1, 2, 3, 4)).unsqueeze(1) * 4 - 2)
        if self.training:
            self.calls += 1
            x = x + float(np.random.normal(0, 0.01)) + random.gauss(0, 0.01)
        return self.head(self.drop(x))


def toy_clips(n: int, offset: int = 0) -> ClipSet:
    records = [ClipRecord(f"clip-{i}", f"toy:{i}", 5 + i % 20, i % 3) for i in range(offset, offset + n)]
    return ClipSet("toy", records, ToyReader(), num_frames=4, image_size=8)


def train(tmp_path: Path, *, epochs: int = 5, stop_after: int | None = None, selection: str = "best_on_test",
          config_hash: str = "h1", monkeypatch=None, messages: list[str] | None = None):
    """A fresh module, optimiser and scheduler (as a rerun builds them), trained with its
    state in ``tmp_path``; ``stop_after`` stops right after that epoch's state is saved."""
    torch.manual_seed(0)
    np.random.seed(0)
    random.seed(0)
    module = NoisyNet()
    optimizer = torch.optim.SGD([p for p in module.parameters() if p.requires_grad], lr=0.5, momentum=0.9)
    scheduler = torch.optim.lr_scheduler.MultiStepLR(optimizer, [2, 4], gamma=0.5)
    messages = [] if messages is None else messages
    monitor = Monitor(selection, test_clips=toy_clips(9, offset=100) if selection == "best_on_test" else None,
                      unit="toy", echo=messages.append, config_hash=config_hash,
                      history_path=tmp_path / "fold1-seed1.history.jsonl", state_path=tmp_path / "fold1-seed1.state.pt")
    if stop_after is not None:
        real = engine.save_state

        def save_then_stop(path, state, *args, **kwargs):
            size = real(path, state, *args, **kwargs)
            if state.epoch == stop_after:
                raise Stop
            return size

        monkeypatch.setattr(engine, "save_state", save_then_stop)
    try:
        info = engine.train_module(module, optimizer, scheduler, toy_clips(21), monitor, epochs=epochs, batch_size=4,
                                   device="cpu", seed=3)
    finally:
        if monkeypatch is not None:
            monkeypatch.undo()
    logits = engine.predict_module(module, toy_clips(9, offset=100), batch_size=4, device="cpu")
    return module, info, monitor, logits, torch.get_rng_state()


def numbers(history):
    return [{k: v for k, v in row.items() if k != "seconds"} for row in history]


@pytest.mark.parametrize("selection", ["best_on_test", "last_epoch"])
@pytest.mark.parametrize("stop_after", [1, 3])
def test_resumed_training_equals_an_uninterrupted_one_bit_for_bit(tmp_path, monkeypatch, selection, stop_after):
    whole, whole_info, whole_monitor, whole_logits, whole_rng = train(tmp_path / "whole", selection=selection)
    with pytest.raises(Stop):
        train(tmp_path / "cut", stop_after=stop_after, selection=selection, monkeypatch=monkeypatch)
    lines = (tmp_path / "cut/fold1-seed1.history.jsonl").read_text().splitlines()
    assert [json.loads(line)["epoch"] for line in lines] == list(range(1, stop_after + 1))
    messages: list[str] = []
    module, info, monitor, logits, rng = train(tmp_path / "cut", selection=selection, messages=messages)
    assert f"resuming toy after epoch {stop_after}/5 (training state {tmp_path / 'cut/fold1-seed1.state.pt'})" \
        in messages
    assert sum(m.startswith("epoch ") for m in messages) == 5 - stop_after  # only the epochs it ran
    assert np.array_equal(logits, whole_logits)  # bit for bit
    for a, b in zip(whole.state_dict().values(), module.state_dict().values()):
        assert torch.equal(a, b)
    assert torch.equal(rng, whole_rng)  # the global generator too: what runs after training draws the same
    assert numbers(monitor.history) == numbers(whole_monitor.history)
    assert info["selected_epoch"] == whole_info["selected_epoch"] and info["resumed_after_epoch"] == stop_after
    assert "test_war" in monitor.history[0] if selection == "best_on_test" else "test_war" not in monitor.history[0]
    rows = [json.loads(line) for line in (tmp_path / "cut/fold1-seed1.history.jsonl").read_text().splitlines()]
    assert numbers(rows) == numbers(whole_monitor.history)  # whole lines, each epoch once


def test_state_of_another_config_is_not_used(tmp_path, monkeypatch):
    with pytest.raises(Stop):
        train(tmp_path, stop_after=2, monkeypatch=monkeypatch)
    messages: list[str] = []
    _, info, monitor, logits, _ = train(tmp_path, config_hash="h2", messages=messages)
    note = next(m for m in messages if m.startswith("note"))
    assert "not resuming toy" in note and "different config hash (h1, this run h2)" in note
    assert info["resumed_after_epoch"] == 0 and len(monitor.history) == 5
    _, _, _, fresh, _ = train(tmp_path / "fresh", config_hash="h2")
    assert np.array_equal(logits, fresh)


@pytest.mark.parametrize("content", [b"", b"not a torch file", "pickle"])
def test_unreadable_state_is_named_and_training_starts_over(tmp_path, content):
    path = tmp_path / "fold1-seed1.state.pt"
    if content == "pickle":  # pickled code must never run: torch.load(weights_only=True) refuses it
        torch.save({"format": 1, "key": os.system}, path)
    else:
        path.write_bytes(content)
    messages: list[str] = []
    _, info, monitor, _, _ = train(tmp_path, messages=messages)
    note = next(m for m in messages if m.startswith("note"))
    assert f"not resuming toy from {path}: it cannot be read" in note and note.endswith("starting at epoch 1")
    assert len(note.splitlines()) == 1
    assert info["resumed_after_epoch"] == 0 and len(monitor.history) == 5


def test_state_holds_what_trains_and_loads_without_pickled_code(tmp_path):
    train(tmp_path, epochs=2)
    blob = torch.load(tmp_path / "fold1-seed1.state.pt", weights_only=True)
    assert set(blob["weights"]) == {"head.weight", "head.bias", "calls"}  # not the frozen layer
    assert int(blob["weights"]["calls"]) == 2 * (21 // 4)  # buffers too: the live ones, after epoch 2
    assert blob["epoch"] == 2 and blob["key"] == {"config_hash": "h1", "seed": 3, "epochs": 2}
    assert [r["epoch"] for r in blob["history"]] == [1, 2]
    assert blob["best"]["epoch"] in (1, 2) and set(blob["best"]["weights"]) == set(blob["weights"])
    assert len(blob["optimizer"]["state"]) == 2  # momentum of head.weight and head.bias


def test_saving_state_draws_no_random_numbers(tmp_path):
    module = NoisyNet()
    optimizer = torch.optim.SGD(module.head.parameters(), lr=0.1)
    torch_before, np_before, py_before = torch.get_rng_state(), np.random.get_state()[1].copy(), random.getstate()
    save_state(tmp_path / "s.pt", TrainingState(epoch=1), module, optimizer, None, key={}, device="cpu")
    assert torch.equal(torch.get_rng_state(), torch_before)
    assert np.array_equal(np.random.get_state()[1], np_before) and random.getstate() == py_before


TINY = ["--set", "model.clip_model=dferbench-test-tiny", "--set", "model.pretrained=", "--set", "data.num_clips=35", "--set", "data.image_size=32",
        "--set", "train.epochs=3", "--set", "train.batch_size=8"]
KILLER = """
import os, signal, sys
import dferbench.run.engine as engine
real = engine.save_state
def save_then_die(path, state, *args, **kwargs):
    size = real(path, state, *args, **kwargs)
    if state.epoch == int(os.environ["KILL_AFTER_EPOCH"]):
        os.kill(os.getpid(), signal.SIGKILL)
    return size
engine.save_state = save_then_die
from dferbench.cli import main
sys.argv = ["dferbench", *sys.argv[1:]]
main()
"""


def dferbench_run(model: str, output: Path, *extra: str, kill_after: int | None = None):
    env = {**os.environ, "OMP_NUM_THREADS": "1", "CI": "true"}
    args = ["run", "--model", model, "--dataset", "synthetic", "--folds", "1", "--output", str(output),
            "--no-leaderboard", "--device", "cpu", *TINY, *extra]
    if kill_after is None:
        return subprocess.run([sys.executable, "-m", "dferbench", *args], env=env, capture_output=True, text=True,
                              timeout=300)
    env["KILL_AFTER_EPOCH"] = str(kill_after)
    return subprocess.run([sys.executable, "-c", KILLER, *args], env=env, capture_output=True, text=True,
                          timeout=300)


@pytest.mark.slow
@pytest.mark.parametrize("model,extra", [("dferclip", ()), ("coop", ("--set", "protocol.selection=best_on_test"))])
def test_a_killed_unit_resumes_to_the_same_predictions(tmp_path, model, extra):
    whole = dferbench_run(model, tmp_path / "whole", *extra)
    assert whole.returncode == 0, whole.stderr
    killed = dferbench_run(model, tmp_path / "cut", *extra, kill_after=2)
    assert killed.returncode == -signal.SIGKILL
    unit = next((tmp_path / "cut/synthetic").iterdir())
    assert (unit / "fold1-seed1.state.pt").is_file() and not (unit / "fold1-seed1.json").exists()
    assert len((unit / "fold1-seed1.history.jsonl").read_text().splitlines()) == 2
    again = dferbench_run(model, tmp_path / "cut", *extra)
    assert again.returncode == 0, again.stderr
    assert f"fold 1 seed 1 after epoch 2/3 (training state {unit / 'fold1-seed1.state.pt'})" in again.stderr
    assert [line.split("  ")[0] for line in again.stderr.splitlines() if line.startswith("epoch ")] == ["epoch 3/3"]
    whole_unit = tmp_path / "whole/synthetic" / unit.name
    assert (unit / "fold1-seed1.predictions.csv").read_bytes() == \
        (whole_unit / "fold1-seed1.predictions.csv").read_bytes()
    assert not (unit / "fold1-seed1.state.pt").exists()  # removed when the unit finished
    result = json.loads((unit / "fold1-seed1.json").read_text())
    assert numbers(result["history"]) == numbers(json.loads((whole_unit / "fold1-seed1.json").read_text())["history"])
    assert result["fit"]["resumed_after_epoch"] == 2


def test_slurm_jobs_requeue_the_same_unit():
    from dferbench.run import sweep

    pytest.importorskip("submitit", reason="the slurm executor needs submitit (pip install 'dferbench[slurm]')")
    unit = sweep.Unit("dferclip", "synthetic", 1, 1)
    again = sweep.RequeuedUnit().checkpoint(unit)  # what submitit submits when SLURM preempts the job
    assert isinstance(again.function, sweep.RequeuedUnit) and again.args == (unit,) and not again.kwargs


def _children(pid: int) -> list[int]:
    path = Path(f"/proc/{pid}/task/{pid}/children")
    return [int(p) for p in path.read_text().split()] if path.exists() else []


@pytest.mark.slow
def test_a_preempted_slurm_unit_is_requeued_and_resumes(tmp_path, monkeypatch):
    import time

    from dferbench.run import sweep

    pytest.importorskip("submitit", reason="the slurm executor needs submitit (pip install 'dferbench[slurm]')")
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    overrides = [o for o in TINY if o != "--set"] + ["train.epochs=4"]
    rows = {}
    for name in ("whole", "preempted"):
        rows[name] = sweep.sweep(["dferclip"], ["synthetic"], folds=[1], overrides=overrides, output=tmp_path / name,
                                 device="cpu", executor="slurm", cluster="local", time_min=10, cpus_per_task=1,
                                 wait=False, echo=lambda m: None)
    deadline = time.monotonic() + 240
    while not list((tmp_path / "preempted").glob("synthetic/*/fold1-seed1.state.pt")):  # epoch 1 of 4 finished
        assert time.monotonic() < deadline, "the job never finished an epoch"
        time.sleep(0.02)
    controller = int(rows["preempted"][0]["job"])
    (task,) = _children(controller)
    os.kill(task, signal.SIGUSR2)  # what SLURM sends before preempting (submitit's signal)
    while len(results := sorted(tmp_path.glob("*/synthetic/*/fold1-seed1.json"))) < 2:
        assert time.monotonic() < deadline, "the requeued unit never finished"
        time.sleep(0.2)
    preempted, whole = sorted(results, key=lambda p: p.relative_to(tmp_path).parts[0])
    log = "".join(p.read_text() for p in (tmp_path / "preempted/.sweep/slurm").rglob("*.err"))
    assert "resuming dferclip" in log and "after epoch" in log
    assert json.loads(preempted.read_text())["fit"]["resumed_after_epoch"] >= 1
    assert whole.with_suffix(".predictions.csv").read_bytes() == preempted.with_suffix(".predictions.csv").read_bytes()


def _ray_worker_running_unit(variable: str) -> int | None:
    """The PID of the Ray worker of this test (``variable`` in its environment: the Ray
    instance it started) that runs a unit (Ray titles it ``ray::run_unit``)."""
    for proc in Path("/proc").iterdir():
        if proc.name.isdigit():
            try:
                if (proc / "cmdline").read_bytes().startswith(b"ray::run_unit") and \
                        variable.encode() in (proc / "environ").read_bytes().split(b"\0"):
                    return int(proc.name)
            except OSError:
                continue
    return None


@pytest.mark.slow
def test_a_ray_unit_whose_worker_dies_runs_again_and_resumes(tmp_path, monkeypatch):
    import time

    from dferbench.run import sweep

    pytest.importorskip("ray", reason="the ray executor needs ray (pip install 'dferbench[ray]')")
    marker = f"DFERBENCH_TEST_UNIT={tmp_path}"  # DFERBENCH_* variables travel with the Ray tasks
    monkeypatch.setenv(*marker.split("=", 1))
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    overrides = [o for o in TINY if o != "--set"] + ["train.epochs=4"]
    killed = []

    def kill_after_epoch_1():
        deadline = time.monotonic() + 240
        while not list(tmp_path.glob("synthetic/*/fold1-seed1.state.pt")) and time.monotonic() < deadline:
            time.sleep(0.02)
        pid = _ray_worker_running_unit(marker)
        if pid is not None:
            os.kill(pid, signal.SIGKILL)  # the Ray worker running this unit: a node lost to preemption
            killed.append(pid)

    import threading

    killer = threading.Thread(target=kill_after_epoch_1, daemon=True)
    killer.start()
    rows = sweep.sweep(["dferclip"], ["synthetic"], folds=[1], overrides=overrides, output=tmp_path, device="cpu",
                       executor="ray", num_cpus=1, echo=lambda m: None)
    killer.join()
    assert killed and [r["status"] for r in rows] == ["done"], rows
    result = json.loads(next(tmp_path.glob("synthetic/*/fold1-seed1.json")).read_text())
    assert result["fit"]["resumed_after_epoch"] >= 1


DDP_SCRIPT = """
import os, sys
from pathlib import Path
import numpy as np, torch
from dferbench.run import distributed as dist
from dferbench.run import engine
from dferbench.data.loader import ClipSet
from dferbench.data.records import ClipRecord
from dferbench.plugin.method import Monitor
sys.path.insert(0, os.environ["TESTS_DIR"])
from conftest import MeanBrightness, ToyReader

dist.init_from_env("cpu")
real = engine.save_state
def save_then_die(path, state, *args, **kwargs):
    size = real(path, state, *args, **kwargs)
    if state.epoch == int(os.environ.get("STOP_AFTER", "0")):
        os._exit(9)  # rank 0 dies; torchrun ends the other rank
    return size
engine.save_state = save_then_die
records = [ClipRecord(f"clip-{i}", f"toy:{i}", 5 + i % 9, i % 3) for i in range(40)]
train = ClipSet("toy", records[:29], ToyReader(), num_frames=4, image_size=8, augmentation="dfew")
test = ClipSet("toy", records[29:], ToyReader(), num_frames=4, image_size=8)
torch.manual_seed(0)
module = MeanBrightness(3)
optimizer = torch.optim.SGD(module.parameters(), lr=0.5, momentum=0.9)
out = Path(sys.argv[1])
monitor = Monitor("best_on_test", test_clips=test, state_path=out / "state.pt", echo=print)
engine.train_module(module, optimizer, None, train, monitor, epochs=3, batch_size=8, device="cpu", seed=1,
                    eval_batch_size=4)
np.save(out / f"rank{dist.rank_world()[0]}.npy", engine.predict_module(module, test, batch_size=4, device="cpu"))
"""


@pytest.mark.slow
def test_a_torchrun_job_resumes_on_every_rank(tmp_path):
    script = tmp_path / "train.py"
    script.write_text(DDP_SCRIPT)

    def torchrun(out: Path, stop_after: int = 0) -> subprocess.CompletedProcess:
        out.mkdir(exist_ok=True)
        env = {**os.environ, "OMP_NUM_THREADS": "1", "STOP_AFTER": str(stop_after), "TESTS_DIR": str(ROOT / "tests")}
        cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc-per-node", "2",
               "--master-port", str(29500 + (os.getpid() + stop_after) % 1000), str(script), str(out)]
        return subprocess.run(cmd, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)

    whole = torchrun(tmp_path / "whole")
    assert whole.returncode == 0, whole.stderr[-3000:]
    assert torchrun(tmp_path / "cut", stop_after=2).returncode != 0
    again = torchrun(tmp_path / "cut")
    assert again.returncode == 0, again.stderr[-3000:]
    assert again.stdout.count("resuming training after epoch 2/3") == 1  # said once, by rank 0
    for rank in (0, 1):
        assert np.array_equal(np.load(tmp_path / f"cut/rank{rank}.npy"), np.load(tmp_path / f"whole/rank{rank}.npy"))
