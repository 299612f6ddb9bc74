"""From clip records to batches: sampling, reading, augmenting, batching.

Two ways to iterate a :class:`ClipSet`:

* :meth:`ClipSet.loader` -- one epoch as a plain ``DataLoader`` of CPU float tensors
  (feature extraction, simple loops);
* :meth:`ClipSet.batches` -- what the training engine uses: batches land on the training
  device, worker processes persist across epochs, pinned memory and deeper prefetching
  on CUDA, an optional decode-and-augment-on-the-GPU path, and sharding over the ranks
  of a ``torchrun`` job (each rank takes its slice of every global batch; at test time
  each clip goes to exactly one rank, with no padding).

Both give identical clips for identical ``(seed, epoch, clip index)``: sampling and
augmentation parameters come from ``numpy.random.default_rng([seed, epoch, index])``
only, so nothing depends on the number of workers or ranks. The shuffling order comes
from ``torch.Generator().manual_seed(seed * 100003 + epoch)`` (:func:`shuffled_order`).
Neither touches torch's global random generator.

Data pipelines (``data.pipeline``):

* ``cpu``: workers decode only the sampled frames (simplejpeg) and augment the stacked
  uint8 clip (:class:`~dferbench.data.transforms.ClipTransform`); the batch travels to
  the device as uint8 and is scaled (and normalised) there.
* ``gpu``: workers read the sampled frames' JPEG bytes and draw the clip's augmentation
  parameters; the training process decodes them in one batched ``decode_jpeg`` on the
  device and augments there (:mod:`dferbench.data.gpu`). Non-JPEG frames and non-folder
  sources are decoded by the workers and only augmented on the device.
* ``reference``: the authors' loader -- list the folder, open every sampled frame with
  PIL, transform frame by frame (:mod:`dferbench.data.reference`); for comparisons.
* ``auto`` (default): ``cpu``, except on CUDA with fewer than
  :data:`CPU_DECODE_MIN_WORKERS` workers, where ``gpu`` (if torchvision decodes JPEGs
  there). Decoding in the workers keeps the GPU for the training step: one core makes
  about 120 clips/s of 16 frames (224 px JPEGs, DFEW augmentation; ``dferbench bench
  data``), while the GPU path cost an H100 about 2.4 ms of GPU time per clip, as much as
  the bf16 ViT-B/32 step itself. So a few workers already beat decoding on the GPU, and
  the GPU path is for machines with few CPUs per GPU.

On CUDA the device-side step of each pipeline (copy, scaling, decoding and augmenting)
runs for the next batches in a background thread on a stream of its own, overlapping the
training step (:mod:`dferbench.data.prefetch`).
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass, replace
from typing import Any, Iterator

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, Sampler
from torch.utils.data._utils.collate import default_collate

from dferbench.data.records import ClipRecord, FrameReader
from dferbench.data.sampling import segment_indices
from dferbench.data.transforms import build_clip_transform, to_unit_float
from dferbench.errors import DferbenchError

PIPELINES: tuple[str, ...] = ("auto", "cpu", "gpu", "reference")
CPU_DECODE_MIN_WORKERS = 4


def resolve_pipeline(pipeline: str, device: str, workers: int) -> str:
    """The pipeline ``auto`` stands for on ``device`` with ``workers`` resolved DataLoader
    workers; checks the name."""
    if pipeline not in PIPELINES:
        raise DferbenchError(f"data.pipeline must be one of {', '.join(PIPELINES)}, got {pipeline!r}")
    if pipeline != "auto":
        return pipeline
    if device.startswith("cuda") and workers < CPU_DECODE_MIN_WORKERS:
        from dferbench.data.gpu import decode_available

        return "gpu" if decode_available(device) else "cpu"
    return "cpu"


def resolve_workers(workers: int, device: str) -> int:
    """``data.workers``; -1 (auto) = none on CPU; on CUDA the CPUs of this rank's share of
    the machine, less one for the training process, at most 16."""
    if workers >= 0:
        return workers
    if not device.startswith("cuda"):
        return 0
    try:
        cpus = len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - macOS
        cpus = os.cpu_count() or 2
    local = max(1, int(os.environ.get("LOCAL_WORLD_SIZE", "1")))
    return max(1, min(16, cpus // local - 1))


@dataclass
class ClipSet:
    """The clips of one split, with everything needed to turn them into tensors."""

    dataset: str
    records: list[ClipRecord]
    reader: FrameReader
    num_frames: int = 16
    image_size: int = 224
    normalize: str = "none"
    augmentation: str = "none"
    workers: int = 0
    pipeline: str = "auto"
    prefetch: int = -1  # batches finished ahead on the device: -1 = auto (see ClipBatches)

    def __len__(self) -> int:
        return len(self.records)

    @property
    def labels(self) -> np.ndarray:
        return np.array([r.label for r in self.records], dtype=np.int64)

    def subset(self, indices: Any) -> ClipSet:
        return replace(self, records=[self.records[i] for i in indices])

    def fingerprint(self) -> str:
        """Identifies the test-time input: clips, sampling, resolution, normalisation, and
        the reader's ``fingerprint_tag`` where it has a non-empty one (a corruption)."""
        h = hashlib.sha256()
        h.update(f"{self.dataset}|{self.num_frames}|{self.image_size}|{self.normalize}".encode())
        tag = getattr(self.reader, "fingerprint_tag", "")
        if tag:
            h.update(f"|reader:{tag}".encode())
        for r in self.records:
            h.update(f"|{r.clip_id}:{r.source}:{r.n_frames}".encode())
        return h.hexdigest()[:16]

    def loader(self, *, train: bool, batch_size: int, seed: int = 0, epoch: int = 0,
               drop_last: bool = False) -> DataLoader:
        """Batches of ``(video [B, T, 3, H, W] float, label [B], index [B])`` on the CPU.

        Training loaders shuffle and augment, with randomness derived from
        ``(seed, epoch, clip index)`` only, so results do not depend on worker count.
        """
        mode = "reference" if self.pipeline == "reference" else "cpu"
        data = _ClipDataset(self, train=train, seed=seed, epoch=epoch, mode=mode)
        generator = torch.Generator().manual_seed(seed * 100_003 + epoch) if train else None
        return DataLoader(
            data, batch_size=batch_size, shuffle=train, drop_last=drop_last, generator=generator,
            num_workers=resolve_workers(self.workers, "cpu"), persistent_workers=False,
            pin_memory=torch.cuda.is_available(),
        )

    def batches(self, *, train: bool, batch_size: int, device: str = "cpu", seed: int = 0,
                drop_last: bool = False, rank: int = 0, world: int = 1,
                persistent: bool | None = None, prefetch: int | None = None) -> ClipBatches:
        """Batches on ``device``, epoch after epoch: see :class:`ClipBatches`."""
        return ClipBatches(self, train=train, batch_size=batch_size, device=device, seed=seed,
                           drop_last=drop_last, rank=rank, world=world, persistent=persistent, prefetch=prefetch)


def shuffled_order(n: int, seed: int, epoch: int) -> np.ndarray:
    """The clip order of training epoch ``epoch``, as the engine has always drawn it.

    Earlier versions shuffled with ``DataLoader(shuffle=True, generator=torch.Generator()
    .manual_seed(seed * 100003 + epoch))`` wrapped in a ``tqdm.auto`` progress bar, which
    calls ``iter()`` on what it wraps: two loader iterators were created per epoch, each
    drawing a worker base seed from the generator before the permutation. Both draws are
    kept so that earlier results reproduce exactly. (With ``data.workers > 0`` the first,
    discarded iterator also prefetched and so drew a permutation of its own: earlier
    results then depended on the worker count, against the documented guarantee. The
    order here is the ``workers = 0`` one, the default, for every worker count.)
    """
    g = torch.Generator().manual_seed(seed * 100_003 + epoch)
    for _ in range(2):
        torch.empty((), dtype=torch.int64).random_(generator=g)
    return torch.randperm(n, generator=g).numpy()


class BatchPlan(Sampler):
    """Which clips each batch of one rank holds, as ``(epoch, clip index)`` pairs.

    Training (``train=True``): the epoch's shuffled order is cut into global batches of
    ``batch_size``; rank ``r`` of ``world`` takes the ``r``-th of ``world`` near-equal
    slices of every global batch, so ``world`` ranks together see exactly the batches
    one process would (a final global batch smaller than ``world`` is skipped by all).
    Testing: the clips, in order, are split into ``world`` contiguous shards, each cut
    into batches; every clip belongs to exactly one rank and nothing is padded.
    """

    def __init__(self, n: int, batch_size: int, *, train: bool, seed: int = 0, drop_last: bool = False,
                 rank: int = 0, world: int = 1):
        if batch_size < 1:
            raise ValueError(f"batch_size must be positive, got {batch_size}")
        self.n, self.batch_size, self.train, self.seed = n, batch_size, train, seed
        self.drop_last, self.rank, self.world = drop_last, rank, world
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def _cut(self, order: np.ndarray) -> list[np.ndarray]:
        stop = len(order) - len(order) % self.batch_size if self.drop_last else len(order)
        return [order[k:k + self.batch_size] for k in range(0, stop, self.batch_size)]

    def plan(self) -> list[tuple[np.ndarray, int]]:
        """``(clip indices of this rank, size of the global batch)`` per batch."""
        if not self.train:
            shard = np.array_split(np.arange(self.n), self.world)[self.rank]
            return [(b, len(b)) for b in self._cut(shard)]
        order = shuffled_order(self.n, self.seed, self.epoch)
        out = []
        for b in self._cut(order):
            if self.world > 1:
                if len(b) < self.world:
                    continue
                out.append((np.array_split(b, self.world)[self.rank], len(b)))
            else:
                out.append((b, len(b)))
        return out

    def __iter__(self) -> Iterator[list[tuple[int, int]]]:
        for b, _ in self.plan():
            yield [(self.epoch, int(i)) for i in b]

    def __len__(self) -> int:
        return len(self.plan())


class ClipBatches:
    """Batches of a :class:`ClipSet` on ``device``; iterate ``epoch(e)`` once per epoch.

    Each item is ``(video [B, T, 3, S, S] float32, labels [B], clip indices [B] (CPU),
    global batch size)``; ``global batch size`` is the batch size summed over ranks (=
    ``B`` in a single process). With ``persistent`` (default: for training) the worker
    processes live as long as this object instead of one epoch. ``prefetch`` batches are
    finished for the device ahead of the consumer (default: ``clips.prefetch``; when that
    is -1, 2 on CUDA and 0 elsewhere and for the ``reference`` pipeline).
    """

    def __init__(self, clips: ClipSet, *, train: bool, batch_size: int, device: str, seed: int = 0,
                 drop_last: bool = False, rank: int = 0, world: int = 1, persistent: bool | None = None,
                 prefetch: int | None = None):
        self.clips, self.device, self.train = clips, device, train
        self.workers = resolve_workers(clips.workers, device)
        self.pipeline = resolve_pipeline(clips.pipeline, device, self.workers)
        if prefetch is None:
            prefetch = clips.prefetch
        if prefetch < 0:  # the reference pipeline is the authors' loop: nothing ahead
            prefetch = 2 if device.startswith("cuda") and self.pipeline != "reference" else 0
        self.prefetch = prefetch
        self.plan = BatchPlan(len(clips), batch_size, train=train, seed=seed, drop_last=drop_last,
                              rank=rank, world=world)
        self.dataset = _ClipDataset(clips, train=train, seed=seed, epoch=0, mode=self.pipeline, uint8=True)
        cuda = device.startswith("cuda")
        self.loader = DataLoader(
            self.dataset, batch_sampler=self.plan, num_workers=self.workers,
            generator=torch.Generator(),  # worker seeds (unused) must not draw from the global generator
            collate_fn=_collate_raw if self.pipeline == "gpu" else default_collate,
            pin_memory=cuda, persistent_workers=self.workers > 0 and (train if persistent is None else persistent),
            prefetch_factor=4 if self.workers > 0 else None,
        )

    def __len__(self) -> int:
        return len(self.plan)

    def epoch(self, epoch: int) -> Iterator[tuple[torch.Tensor, torch.Tensor, torch.Tensor, int]]:
        from dferbench.data.prefetch import prefetched

        self.plan.set_epoch(epoch)
        sizes = [g for _, g in self.plan.plan()]
        batches = prefetched(self.loader, self._to_device, device=self.device, depth=self.prefetch)
        try:
            for (video, labels, index), global_size in zip(batches, sizes):
                yield video, labels, index, global_size
        finally:
            batches.close()

    def _to_device(self, batch: tuple[Any, torch.Tensor, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor,
                                                                                   torch.Tensor]:
        video, labels, index = batch
        if self.pipeline == "gpu":
            from dferbench.data.gpu import finish_batch

            video = finish_batch(video, self.dataset.transform, self.device)
        else:
            video = video.to(self.device, non_blocking=True)
            if video.dtype == torch.uint8:
                video = to_unit_float(video, self.dataset.transform.normalize)
        return video, labels.to(self.device, non_blocking=True), index


def _collate_raw(items: list[tuple[Any, int, int]]) -> tuple[Any, torch.Tensor, torch.Tensor]:
    from dferbench.data.gpu import RawBatch

    raws, labels, index = zip(*items)
    return RawBatch(raws), torch.tensor(labels, dtype=torch.int64), torch.tensor(index, dtype=torch.int64)


class _ClipDataset(Dataset):
    """Item ``i`` or ``(epoch, i)`` -> ``(clip, label, i)``; ``clip`` is a float tensor
    (``uint8``: the ``cpu`` pipeline's clip before its scaling to [0, 1]), or a
    :class:`~dferbench.data.gpu.RawClip` for the ``gpu`` pipeline."""

    def __init__(self, clips: ClipSet, *, train: bool, seed: int, epoch: int, mode: str = "cpu",
                 uint8: bool = False):
        self.clips = clips
        self.train = train
        self.seed = seed
        self.epoch = epoch
        self.mode = mode
        self.uint8 = uint8
        augmentation = clips.augmentation if train else "none"
        self.transform = build_clip_transform(augmentation, clips.image_size, clips.normalize, train=train)

    def __len__(self) -> int:
        return len(self.clips)

    def __getitem__(self, item: int | tuple[int, int]) -> tuple[Any, int, int]:
        epoch, i = item if isinstance(item, tuple) else (self.epoch, item)
        record = self.clips.records[i]
        rng = np.random.default_rng([self.seed, epoch, i])
        indices = segment_indices(record.n_frames, self.clips.num_frames, train=self.train, rng=rng)
        try:
            if self.mode == "reference":
                from dferbench.data.reference import reference_clip

                return reference_clip(record, indices, self.transform, rng), record.label, i
            if self.mode == "gpu":
                from dferbench.data.gpu import read_raw_clip

                return read_raw_clip(self.clips.reader, record, indices, self.transform, rng), record.label, i
            frames = self.clips.reader(record, indices)
        except DferbenchError:
            raise
        except Exception as exc:
            raise DferbenchError(
                f"clip {record.clip_id} ({record.source}) could not be read: {exc}. "
                "Run `dferbench check-data` on this dataset: it lists every clip that cannot be read."
            ) from exc
        return self.transform(frames, rng, uint8=self.uint8), record.label, i
