"""Batches finished ahead of the consumer, and what a batch carries between processes."""

from __future__ import annotations

import threading
import time

import pytest
import torch

from dferbench.tools.bench_data import write_frame_folders
from dferbench.data import gpu
from dferbench.data.loader import ClipSet, _collate_raw
from dferbench.data.prefetch import prefetched
from dferbench.data.readers import FrameFolderReader
from dferbench_plugins.synthetic.render import make_synthetic_dataset


def _threads() -> int:
    return sum(t.name == "dferbench-prefetch" for t in threading.enumerate())


@pytest.mark.parametrize("depth", [0, 1, 3])
def test_prefetched_keeps_order_and_values(depth):
    assert list(prefetched(range(10), lambda x: x * x, device="cpu", depth=depth)) == [x * x for x in range(10)]
    assert _threads() == 0


def test_prefetched_runs_ahead_of_the_consumer():
    finished = []

    def finish(x):
        finished.append(x)
        return x

    items = prefetched(range(10), finish, device="cpu", depth=2)
    assert next(items) == 0
    deadline = time.monotonic() + 5
    while len(finished) < 3 and time.monotonic() < deadline:  # item 0 taken, 1 and 2 waiting
        time.sleep(0.01)
    assert finished == [0, 1, 2]
    items.close()


def test_prefetched_raises_the_error_at_its_item_and_stops():
    def finish(x):
        if x == 3:
            raise ValueError("bad clip 3")
        return x

    seen = []
    with pytest.raises(ValueError, match="bad clip 3"):
        for x in prefetched(range(10), finish, device="cpu", depth=2):
            seen.append(x)
    assert seen == [0, 1, 2]
    assert _threads() == 0


def test_closing_early_stops_the_thread():
    items = prefetched(iter(range(1000)), lambda x: x, device="cpu", depth=2)
    assert [next(items) for _ in range(3)] == [0, 1, 2]
    items.close()
    assert _threads() == 0


@pytest.mark.parametrize("pipeline", ["cpu", "gpu"])
def test_prefetching_batches_changes_nothing(tmp_path, pipeline):
    folders = write_frame_folders(tmp_path, 6, 12, 64, processes=1)
    clips = ClipSet("b", folders, FrameFolderReader(), num_frames=4, image_size=32, normalize="clip",
                    augmentation="dfew", pipeline=pipeline)
    runs = []
    for workers, prefetch in ((0, 0), (2, 2)):  # worker processes consumed from the prefetch thread
        clips.workers = workers
        stream = clips.batches(train=True, batch_size=2, seed=3, drop_last=True, prefetch=prefetch)
        runs.append([b for epoch in (0, 1) for b in stream.epoch(epoch)])
    for (a, la, ia, ga), (b, lb, ib, gb) in zip(*runs):
        assert torch.equal(a, b) and torch.equal(la, lb) and torch.equal(ia, ib) and ga == gb
    assert len(runs[0]) == len(runs[1]) == 6


def test_a_gpu_pipeline_batch_crosses_processes_as_two_tensors_at_most(tmp_path):
    # One shared-memory block per tensor: per-frame tensors made hundreds per batch and ran
    # out of file descriptors with 15 workers prefetching deeply.
    jpeg_folders = write_frame_folders(tmp_path, 3, 10, 48, processes=1)
    synthetic = make_synthetic_dataset(num_clips=35).split(1, "test")[:2]
    for records, reader in ((jpeg_folders, FrameFolderReader()), (synthetic, make_synthetic_dataset(num_clips=35).reader)):
        clips = ClipSet("b", records, reader, num_frames=8, image_size=32, augmentation="mafw", pipeline="gpu")
        stream = clips.batches(train=True, batch_size=len(records), drop_last=True)
        items = [stream.dataset[(0, i)] for i in range(len(records))]
        batch, labels, index = _collate_raw(items)
        assert isinstance(batch, gpu.RawBatch) and len(batch) == len(records)
        tensors = [getattr(batch, slot) for slot in gpu.RawBatch.__slots__]
        assert sum(isinstance(t, torch.Tensor) for t in tensors) == 1
        video = gpu.finish_batch(batch, stream.dataset.transform, "cpu")
        assert video.shape == (len(records), 8, 3, 32, 32)


def test_cpu_pipeline_ships_uint8_and_scales_on_the_device():
    ds = make_synthetic_dataset(num_clips=35)
    clips = ClipSet("s", ds.split(1, "test"), ds.reader, num_frames=4, image_size=32, normalize="none",
                    augmentation="dfew", pipeline="cpu")
    stream = clips.batches(train=True, batch_size=4, seed=1, drop_last=True)
    clip, _, _ = stream.dataset[(0, 0)]
    assert clip.dtype == torch.uint8 and clip.shape == (4, 3, 32, 32)
    video = next(iter(stream.epoch(0)))[0]
    assert video.dtype == torch.float32 and 0 <= video.min() and video.max() <= 1
