"""Multi-process training of one unit: torchrun + gloo on the CPU, 2 processes.

What is proved:

* sharding: 2 ranks together see exactly the training batches of one process (each rank
  half of every global batch), and at test time every clip exactly once, unpadded;
* training + evaluation under a real gloo process group (``train_module`` with
  ``best_on_test``, then ``predict_module``) gives on every rank the losses, the selected
  epoch and the logits of one process, for a test-clip count that does not divide by
  the ranks (so padding would show);
* ``torchrun --nproc-per-node 2 -m dferbench run`` trains DFER-CLIP with DDP and gives
  the single-process result: same UAR/WAR and per-clip predictions, logits equal up to
  float summation order (DDP averages the two half-batch gradients where one process
  averages over the whole batch), one result file written by rank 0.
"""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest

from dferbench.data.loader import BatchPlan
from dferbench.run.distributed import assemble


def test_ranks_split_every_global_batch():
    one = BatchPlan(37, 8, train=True, seed=3, drop_last=True)
    ranks = [BatchPlan(37, 8, train=True, seed=3, drop_last=True, rank=r, world=2) for r in (0, 1)]
    for epoch in (0, 1):
        for p in (one, *ranks):
            p.set_epoch(epoch)
        single = one.plan()
        per_rank = [p.plan() for p in ranks]
        assert len(single) == len(per_rank[0]) == len(per_rank[1]) == 4
        for k, (batch, size) in enumerate(single):
            halves = [per_rank[r][k] for r in (0, 1)]
            assert np.concatenate([h[0] for h in halves]).tolist() == batch.tolist()
            assert [len(h[0]) for h in halves] == [4, 4] and all(h[1] == size == 8 for h in halves)


def test_test_shards_cover_each_clip_once_without_padding():
    for n, world in ((7, 2), (10, 3), (2, 4)):
        shards = [BatchPlan(n, 3, train=False, rank=r, world=world).plan() for r in range(world)]
        clips = [int(i) for shard in shards for batch, _ in shard for i in batch]
        assert sorted(clips) == list(range(n))  # each clip once: nothing padded, nothing lost


def test_assemble_drops_sampler_padding_and_refuses_gaps():
    rows = np.arange(10, dtype=np.float32).reshape(5, 2)
    # A DistributedSampler pads 5 clips on 2 ranks to 3 + 3 by repeating clip 0.
    parts = [(np.array([0, 2, 4]), rows[[0, 2, 4]]), (np.array([1, 3, 0]), rows[[1, 3, 0]])]
    np.testing.assert_array_equal(assemble(parts, 5), rows)
    with pytest.raises(RuntimeError, match="lost clips"):
        assemble(parts[:1], 5)


def _torchrun(args: list[str], cwd, nproc: int = 2) -> subprocess.CompletedProcess:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "DFERBENCH_NO_PROGRESS": "1"}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc-per-node", str(nproc),
           "--master-port", str(29500 + os.getpid() % 1000)] + args
    return subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=300)


SCRIPT = textwrap.dedent("""
    import json, sys
    import numpy as np, torch
    from dferbench.run import distributed as dist
    from dferbench.data.loader import ClipSet
    from dferbench.data.records import ClipRecord
    from dferbench.run.engine import predict_module, train_module
    from dferbench.plugin.method import Monitor

    class Reader:  # brightness encodes the label, plus noise: learnable in a few steps
        def __call__(self, record, indices):
            rng = np.random.default_rng(int(record.clip_id))
            frames = 40 + 80 * record.label + rng.normal(0, 40, size=(len(indices), 8, 8, 3))
            return np.clip(frames, 0, 255).astype(np.uint8)

    dist.init_from_env("cpu")
    records = [ClipRecord(str(i), f"toy:{i}", 5 + i % 9, i % 3) for i in range(40)]
    train = ClipSet("toy", records[:29], Reader(), num_frames=4, image_size=8, augmentation="dfew")
    test = ClipSet("toy", records[29:], Reader(), num_frames=4, image_size=8)  # 11 clips: 6 + 5 on 2 ranks
    class MeanBrightness(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.head = torch.nn.Linear(1, 3)

        def forward(self, video):  # [B, T, 3, H, W]
            return self.head(video.mean(dim=(1, 2, 3, 4)).unsqueeze(1) * 4 - 2)

    torch.manual_seed(0)
    module = MeanBrightness()
    optimizer = torch.optim.SGD(module.parameters(), lr=0.5, momentum=0.9)
    monitor = Monitor("best_on_test", test_clips=test)
    info = train_module(module, optimizer, None, train, monitor, epochs=3, batch_size=8, device="cpu", seed=1,
                        eval_batch_size=4)
    logits = predict_module(module, test, batch_size=4, device="cpu")
    rank, world = dist.rank_world()
    np.save(f"{sys.argv[1]}-rank{rank}-of{world}.npy", logits)
    with open(f"{sys.argv[1]}-rank{rank}-of{world}.json", "w") as f:
        json.dump({"history": monitor.history, "info": info}, f)
""")


def test_ddp_training_and_evaluation_under_gloo_match_one_process(tmp_path):
    script = tmp_path / "train.py"
    script.write_text(SCRIPT)
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    subprocess.run([sys.executable, str(script), str(tmp_path / "out")], check=True, env=env, timeout=300)
    proc = _torchrun([str(script), str(tmp_path / "out")], tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    single = np.load(tmp_path / "out-rank0-of1.npy")
    one = json.loads((tmp_path / "out-rank0-of1.json").read_text())
    assert single.shape == (11, 3) and len(set(single.argmax(1))) == 3  # a model that tells classes apart
    assert one["info"]["world_size"] == 1
    for rank in (0, 1):
        logits = np.load(tmp_path / f"out-rank{rank}-of2.npy")
        two = json.loads((tmp_path / f"out-rank{rank}-of2.json").read_text())
        assert two["info"]["world_size"] == 2
        # Same steps: every rank takes half of each batch of 8, DDP averages the gradients.
        np.testing.assert_allclose(logits, single, rtol=1e-4, atol=1e-4)
        assert logits.argmax(1).tolist() == single.argmax(1).tolist()
        for a, b in zip(one["history"], two["history"]):
            assert b["train_loss"] == pytest.approx(a["train_loss"], rel=1e-5)
            assert b["test_war"] == a["test_war"]  # the per-epoch test score counts 11 clips, not 12
        assert two["info"]["selected_epoch"] == one["info"]["selected_epoch"]


def _logits(path) -> tuple[np.ndarray, np.ndarray]:
    rows = list(csv.DictReader(open(path)))
    return (np.array([int(r["prediction"]) for r in rows]),
            np.array([[float(v) for k, v in r.items() if k.startswith("logit_")] for r in rows]))


@pytest.mark.slow
def test_torchrun_ddp_unit_matches_one_process(tmp_path):
    args = ["-m", "dferbench", "run", "--model", "dferclip", "--dataset", "synthetic", "--folds", "1",
            "--device", "cpu", "--set", "data.num_clips=35", "--set", "data.num_frames=4", "--set", "train.epochs=2",
            "--set", "train.batch_size=8", "--set", "model.lr_temporal=0.05", "--no-leaderboard"]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "DFERBENCH_NO_PROGRESS": "1"}
    one = subprocess.run([sys.executable, *args, "--output", "one"], cwd=tmp_path, env=env, capture_output=True,
                         text=True, timeout=300)
    assert one.returncode == 0, one.stderr[-3000:]
    two = _torchrun(args + ["--output", "two"], tmp_path)
    assert two.returncode == 0, two.stderr[-3000:]
    assert two.stderr.count("done  dferclip") == 1  # only rank 0 talks
    (a_path,) = (tmp_path / "one").rglob("fold1-seed1.json")
    (b_path,) = (tmp_path / "two").rglob("fold1-seed1.json")
    a, b = json.loads(a_path.read_text()), json.loads(b_path.read_text())
    assert b["world_size"] == 2 and a["world_size"] == 1
    assert b["n_test"] == a["n_test"] == 7 and np.sum(b["confusion"]) == 7  # every test clip once
    assert (b["uar"], b["war"]) == (a["uar"], a["war"])
    pred_a, logits_a = _logits(a_path.with_suffix(".predictions.csv"))
    pred_b, logits_b = _logits(b_path.with_suffix(".predictions.csv"))
    assert pred_a.tolist() == pred_b.tolist()
    np.testing.assert_allclose(logits_b, logits_a, rtol=1e-3, atol=1e-3)
    for ra, rb in zip(a["history"], b["history"]):
        assert rb["train_loss"] == pytest.approx(ra["train_loss"], rel=1e-5)
    assert len(list((tmp_path / "two").rglob("*.json"))) == 1
