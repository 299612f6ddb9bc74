"""From clip records to batches: sampling, reading, augmenting, batching."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, replace
from typing import Any

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset

from dferbench.data.records import ClipRecord, FrameReader
from dferbench.data.sampling import segment_indices
from dferbench.data.transforms import build_clip_transform
from dferbench.errors import DferbenchError


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

    def __len__(self) -> int:
        return len(self.records)

    @property
    def labels(self) -> np.ndarray:
        return np.array([r.label for r in self.records], dtype=np.int64)

    def subset(self, indices: Any) -> ClipSet:
        return replace(self, records=[self.records[i] for i in indices])

    def fingerprint(self) -> str:
        """Identifies the test-time input: clips, sampling, resolution, normalisation."""
        h = hashlib.sha256()
        h.update(f"{self.dataset}|{self.num_frames}|{self.image_size}|{self.normalize}".encode())
        for r in self.records:
            h.update(f"|{r.clip_id}:{r.source}:{r.n_frames}".encode())
        return h.hexdigest()[:16]

    def loader(self, *, train: bool, batch_size: int, seed: int = 0, epoch: int = 0,
               drop_last: bool = False) -> DataLoader:
        """Batches of ``(video [B, T, 3, H, W] float, label [B], index [B])``.

        Training loaders shuffle and augment, with randomness derived from
        ``(seed, epoch, clip index)`` only, so results do not depend on worker count.
        """
        data = _ClipDataset(self, train=train, seed=seed, epoch=epoch)
        generator = torch.Generator().manual_seed(seed * 100_003 + epoch) if train else None
        return DataLoader(
            data, batch_size=batch_size, shuffle=train, drop_last=drop_last, generator=generator,
            num_workers=self.workers, persistent_workers=False, pin_memory=torch.cuda.is_available(),
        )


class _ClipDataset(Dataset):
    def __init__(self, clips: ClipSet, *, train: bool, seed: int, epoch: int):
        self.clips = clips
        self.train = train
        self.seed = seed
        self.epoch = epoch
        augmentation = clips.augmentation if train else "none"
        self.transform = build_clip_transform(augmentation, clips.image_size, clips.normalize, train=train)

    def __len__(self) -> int:
        return len(self.clips)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, int, int]:
        record = self.clips.records[i]
        rng = np.random.default_rng([self.seed, self.epoch, i])
        indices = segment_indices(record.n_frames, self.clips.num_frames, train=self.train, rng=rng)
        try:
            frames = self.clips.reader(record, indices)
        except DferbenchError:
            raise
        except Exception as exc:
            raise DferbenchError(
                f"clip {record.clip_id} ({record.source}) could not be read: {exc}. "
                "Run `dferbench check-data` on this dataset, or set data.skip_bad_clips=true."
            ) from exc
        return self.transform(frames, rng), record.label, i
