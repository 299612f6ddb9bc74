"""`dferbench run` as a process: Ctrl-C and SIGTERM end it with their exit codes and one line,
keeping what finished; two runs into one output folder compute each unit once."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from dferbench.run.results import read_result

TINY_DFERCLIP = ["--set", "model.clip_model=dferbench-test-tiny", "--set", "model.pretrained=", "--set",
                 "data.image_size=32", "--set", "data.num_frames=2", "--set", "data.num_clips=35", "--set",
                 "train.epochs=2", "--set", "train.batch_size=8"]


def dferbench(*args: str, **kwargs) -> subprocess.Popen:
    env = {**os.environ, "DFERBENCH_NO_PROGRESS": "1", "OMP_NUM_THREADS": "1"}
    return subprocess.Popen([sys.executable, "-m", "dferbench", *args], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=env,
                            # a background shell ignores SIGINT in its children; a terminal's Ctrl-C does not
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL), **kwargs)


@pytest.mark.slow
@pytest.mark.parametrize("signum, code, what", [(signal.SIGINT, 130, "interrupted"),
                                                (signal.SIGTERM, 143, "terminated (SIGTERM)")])
def test_a_signal_ends_the_run_with_its_code_and_keeps_finished_units(tmp_path, signum, code, what):
    proc = dferbench("run", "-m", "dferclip", "-d", "synthetic", "-o", str(tmp_path), "--device", "cpu",
                     "--no-leaderboard", *TINY_DFERCLIP)
    said = []
    for line in proc.stderr:  # wait for the first finished unit, then signal during the second
        said.append(line)
        if line.startswith("done "):
            break
    proc.send_signal(signum)
    rest = proc.communicate(timeout=120)[1]
    lines = [line.rstrip("\n") for line in said + rest.splitlines(keepends=True) if line.strip()]
    assert proc.returncode == code, "".join(said) + rest
    assert "Traceback" not in rest and "Aborted" not in rest
    kept = re.fullmatch(rf"{re.escape(what)}; (\d+) finished units kept; rerun the same command to resume", lines[-1])
    assert kept, lines[-1]
    finished = [p for p in tmp_path.rglob("fold*-seed*.json") if read_result(p)[0]]
    assert len(finished) == int(kept.group(1)) >= 1
    assert not list(tmp_path.rglob("*.lock")) and not list(tmp_path.rglob("*.tmp"))


@pytest.mark.slow
def test_two_runs_into_one_folder_compute_each_unit_once(tmp_path):
    args = ("run", "-m", "zeroshot-clip", "-d", "synthetic", "-o", str(tmp_path), "--device", "cpu",
            "--no-leaderboard", "--set", "data.num_clips=35", "--folds", "1,2", "--seeds", "1,2")
    runs = [dferbench(*args), dferbench(*args)]
    logs = [run.communicate(timeout=300)[1] for run in runs]
    assert [run.returncode for run in runs] == [0, 0], logs
    computed = [re.findall(r"^done  \S+ fold (\d) seed (\d)", log, re.M) for log in logs]
    units = sorted(computed[0] + computed[1])
    assert units == [(str(f), str(s)) for f in (1, 2) for s in (1, 2)], logs  # each exactly once
    for log, other in zip(logs, reversed(computed)):  # what one did not compute it skipped or left to the other
        assert len(re.findall(r"^(skip|busy)  ", log, re.M)) == len(other)
    assert len([p for p in Path(tmp_path).rglob("fold*-seed*.json") if read_result(p)[0]]) == 4
    assert not list(tmp_path.rglob("*.lock"))
