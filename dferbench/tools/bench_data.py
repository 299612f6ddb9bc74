"""Loading benchmark: the fast training pipeline against a straightforward one like the official.

Both pipelines do the same work per clip: list the clip's frames, sample
``num_frames`` indices with ``segment_indices(train=True)``, read those frames, apply the
dataset's training augmentation with ONE set of parameters, stack to ``[T,3,S,S]``
float. Indices and augmentation parameters come from the same
``numpy.random.default_rng([seed, clip])`` in both, so they do identical work.

* ``straightforward``: what DFER-CLIP's loader does: ``glob`` + ``sort`` the folder for
  every clip, open every sampled frame with PIL (repeats opened again), apply each
  transform per frame with torchvision v1 / PIL ops, ``np.concatenate`` + permute.
* ``fast``: ``FrameFolderReader`` (cached natural listing, only distinct sampled frames,
  simplejpeg decode) + ``ClipTransform`` (one pass over the stacked uint8 clip).
* ``packed`` (optional): frames pre-decoded once into one uint8 ``.npy`` per clip and
  memory-mapped (``PackedReader``), + ``ClipTransform``.

Run ``python -m dferbench.tools.bench_data ROOT --clips 200 --workers 1`` to print the table.
"""

from __future__ import annotations

import os
import tempfile
import time
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch

from dferbench.data.readers import FrameFolderReader, list_frames
from dferbench.data.records import ClipRecord
from dferbench.data.reference import reference_clip
from dferbench.data.sampling import segment_indices
from dferbench.data.transforms import ClipTransform, build_clip_transform


def fake_frame(clip: int, index: int, size: int = 224) -> np.ndarray:
    """A face-sized synthetic frame: smooth shading plus mid-frequency texture, no noise."""
    y, x = np.mgrid[0:size, 0:size].astype(np.float32) / size
    t = index / 16.0
    r = 128 + 90 * np.sin(6.0 * x + 2.0 * t + clip) * np.cos(4.0 * y)
    g = 128 + 80 * np.cos(9.0 * y - t + 0.5 * clip) + 20 * np.sin(40.0 * x * y)
    b = 110 + 60 * np.sin(5.0 * (x + y) + 3.0 * t) + 25 * np.cos(30.0 * x)
    return np.clip(np.stack([r, g, b], -1), 0, 255).astype(np.uint8)


def write_fake_clips(
    root: str | os.PathLike[str], num_clips: int, n_frames: int = 48, size: int = 224,
    quality: int = 90,
) -> list[ClipRecord]:
    """Write (or reuse) ``num_clips`` JPEG frame folders ``root/<00001>/00001.jpg``..."""
    from PIL import Image

    root = Path(root)
    records = []
    for c in range(num_clips):
        folder = root / f"{c + 1:05d}"
        if not folder.is_dir() or len(list_frames(folder)) != n_frames:
            folder.mkdir(parents=True, exist_ok=True)
            for i in range(n_frames):
                Image.fromarray(fake_frame(c, i, size)).save(folder / f"{i + 1:05d}.jpg", quality=quality)
        records.append(ClipRecord(folder.name, str(folder), n_frames, c % 7))
    return records


def straightforward_clip(record: ClipRecord, rng: np.random.Generator, transform: ClipTransform,
                         num_frames: int) -> torch.Tensor:
    """One clip through a per-frame PIL pipeline like the official loader."""
    indices = segment_indices(record.n_frames, num_frames, train=True, rng=rng)
    return reference_clip(record, indices, transform, rng)


def fast_clip(record: ClipRecord, rng: np.random.Generator, transform: ClipTransform,
              num_frames: int, reader: Any) -> torch.Tensor:
    """One clip through the harness pipeline."""
    indices = segment_indices(record.n_frames, num_frames, train=True, rng=rng)
    return transform(reader(record, indices), rng)


class _Job(torch.utils.data.Dataset):
    def __init__(self, records: list[ClipRecord], fn: Callable[[ClipRecord, np.random.Generator], torch.Tensor],
                 seed: int) -> None:
        self.records, self.fn, self.seed = records, fn, seed

    def __len__(self) -> int:
        return len(self.records)

    def __getitem__(self, i: int) -> torch.Tensor:
        return self.fn(self.records[i], np.random.default_rng([self.seed, i]))


class _Pipeline:
    """Picklable ``(record, rng) -> tensor`` for DataLoader workers."""

    def __init__(self, kind: str, transform: ClipTransform, num_frames: int, reader: Any = None) -> None:
        self.kind, self.transform, self.num_frames, self.reader = kind, transform, num_frames, reader

    def __call__(self, record: ClipRecord, rng: np.random.Generator) -> torch.Tensor:
        if self.kind == "straightforward":
            return straightforward_clip(record, rng, self.transform, self.num_frames)
        return fast_clip(record, rng, self.transform, self.num_frames, self.reader)


def _time_interleaved(pipelines: dict[str, Any], records: list[ClipRecord], seed: int,
                      repeats: int) -> dict[str, tuple[float, float]]:
    """``(wall s, CPU s)`` per pass of each pipeline on one thread, best of ``repeats``.

    The pipelines take turns clip by clip, so a busy machine slows them alike; the CPU
    time of the calling thread is what a dedicated core would need.
    """
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # one core, like a DataLoader worker
    try:
        best = {name: (float("inf"), float("inf")) for name in pipelines}
        for _ in range(repeats):
            wall = dict.fromkeys(pipelines, 0.0)
            cpu = dict.fromkeys(pipelines, 0.0)
            for i, record in enumerate(records):
                for name, fn in pipelines.items():
                    w0, c0 = time.perf_counter(), time.thread_time()
                    fn(record, np.random.default_rng([seed, i]))
                    wall[name] += time.perf_counter() - w0
                    cpu[name] += time.thread_time() - c0
            best = {n: (min(best[n][0], wall[n]), min(best[n][1], cpu[n])) for n in pipelines}
        return best
    finally:
        torch.set_num_threads(threads)


def _time_workers(job: _Job, workers: int) -> float:
    loader = torch.utils.data.DataLoader(job, batch_size=None, num_workers=workers, prefetch_factor=4)
    start = time.perf_counter()
    for _ in loader:
        pass
    return time.perf_counter() - start


def benchmark_loading(
    root: str | os.PathLike[str] | None,
    num_clips: int,
    workers: int = 1,
    *,
    num_frames: int = 16,
    image_size: int = 224,
    augmentation: str = "dfew",
    n_frames: int = 48,
    packed: bool = True,
    repeats: int = 3,
    seed: int = 0,
) -> list[dict[str, Any]]:
    """Clips/s of the straightforward, fast (and packed) training pipelines; one row each.

    ``root`` holds clip frame folders; missing ones are written there first (fake
    224x224 JPEGs). ``None`` uses a temporary folder. With ``workers=1`` the pipelines
    run in one process on one thread, taking turns clip by clip, best of ``repeats``
    passes; with more, each pipeline runs once through a ``DataLoader`` with that many
    workers (worker start-up included). Files are in the OS page cache for all alike.
    """
    from dferbench.data.packed import PackedReader, pack_clips

    if root is None:
        with tempfile.TemporaryDirectory() as tmp:
            return benchmark_loading(tmp, num_clips, workers, num_frames=num_frames, image_size=image_size,
                                     augmentation=augmentation, n_frames=n_frames,
                                     packed=packed, repeats=repeats, seed=seed)
    root = Path(root)
    records = write_fake_clips(root / "frames", num_clips, n_frames)
    transform = build_clip_transform(augmentation, image_size, train=True)
    pipelines = {
        "straightforward": _Pipeline("straightforward", transform, num_frames),
        "fast": _Pipeline("fast", transform, num_frames, FrameFolderReader()),
    }
    if packed:
        pack_clips(records, root / "packed")
        pipelines["packed"] = _Pipeline("packed", transform, num_frames, PackedReader(root / "packed"))
    # Same indices and parameters in every pipeline (checked on one clip).
    a = pipelines["straightforward"](records[0], np.random.default_rng([seed, 0]))
    b = pipelines["fast"](records[0], np.random.default_rng([seed, 0]))
    if (a - b).abs().max() > 2 / 255:
        raise AssertionError("the pipelines disagree: the benchmark would compare different work")
    if workers <= 1:
        timings = _time_interleaved(pipelines, records, seed, repeats)
    else:
        timings = {name: (_time_workers(_Job(records, fn, seed), workers), float("nan"))
                   for name, fn in pipelines.items()}
    rows = []
    n = len(records)
    for name, (wall, cpu) in timings.items():
        rows.append({
            "pipeline": name, "workers": max(workers, 1), "clips": n, "seconds": round(wall, 3),
            "clips_per_s": round(n / wall, 1),
            "clips_per_s_per_worker": round(n / wall / max(workers, 1), 1),
            "clips_per_cpu_s": round(n / cpu, 1) if cpu == cpu else None,
        })
    base = rows[0]
    for row in rows:
        row["speedup"] = round(row["clips_per_s"] / base["clips_per_s"], 2)
        if row["clips_per_cpu_s"] is not None:
            row["cpu_speedup"] = round(row["clips_per_cpu_s"] / base["clips_per_cpu_s"], 2)
    return rows


def write_frame_folders(root: str | os.PathLike[str], num_clips: int, n_frames: int, size: int = 224,
                        processes: int = 0, distinct: int = 16, n_classes: int = 7) -> list[ClipRecord]:
    """``num_clips`` folders of ``n_frames`` synthetic JPEG frames (kept if present).

    The first ``distinct`` clips are rendered; the others hard-link their files (same
    bytes to decode, written in no time), so a benchmark can run a whole timed window
    inside one epoch without minutes of set-up.
    """
    root = Path(root)
    jobs = [(root / f"{c + 1:05d}", c, n_frames, size) for c in range(num_clips)]

    def complete(folder: Path) -> bool:
        return folder.is_dir() and len(list(folder.glob("*.jpg"))) == n_frames

    todo = [j for j in jobs[:distinct] if not complete(j[0])]
    processes = processes or min(8, os.cpu_count() or 1)
    if todo and processes > 1 and len(todo) > 4:
        import multiprocessing

        with multiprocessing.get_context("fork").Pool(processes) as pool:
            pool.starmap(_write_clip, todo)
    else:
        for job in todo:
            _write_clip(*job)
    for folder, c, n, _ in jobs[distinct:]:
        if complete(folder):
            continue
        folder.mkdir(parents=True, exist_ok=True)
        source = jobs[c % distinct][0]
        for i in range(n):
            target = folder / f"{i + 1:05d}.jpg"
            if not target.exists():
                try:
                    os.link(source / target.name, target)
                except OSError:  # no hard links here: copy
                    import shutil

                    shutil.copyfile(source / target.name, target)
    return [ClipRecord(f.name, str(f), n, c % n_classes) for f, c, n, _ in jobs]


def _write_clip(folder: Path, clip: int, frames: int, size: int) -> None:
    from PIL import Image

    folder.mkdir(parents=True, exist_ok=True)
    for i in range(frames):
        Image.fromarray(fake_frame(clip, i, size)).save(folder / f"{i + 1:05d}.jpg", quality=90)
