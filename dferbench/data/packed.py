"""An optional pre-decoded cache: each clip's frames as one uint8 ``.npy``, memory-mapped.

Decoding JPEGs is most of the remaining cost of the fast pipeline; a packed clip is read
by copying the sampled frames out of a memory map. The price is disk: a 224x224 frame
takes 147 KiB instead of ~10-20 KiB of JPEG (DFEW: roughly 100 GB at full size), so
pack at the training resolution or below (``size``) or only a subset you iterate on.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path
from typing import Any, Iterable, Sequence

import numpy as np
import torch
import torch.nn.functional as F

from dferbench.data.readers import AutoReader, BadClipError
from dferbench.data.records import ClipRecord
from dferbench.files import replacing


def packed_path(cache_dir: str | os.PathLike[str], record: ClipRecord) -> Path:
    """Where ``record`` is stored in ``cache_dir`` (keyed by its source path)."""
    key = hashlib.sha1(record.source.encode()).hexdigest()[:20]
    return Path(cache_dir) / f"{key}.npy"


def pack_clips(
    records: Iterable[ClipRecord], cache_dir: str | os.PathLike[str], *,
    reader: Any = None, size: int | None = None, overwrite: bool = False,
) -> int:
    """Decode every frame of each clip once into ``cache_dir``; returns bytes written.

    ``size`` resizes frames to ``size x size`` (bilinear, antialiased) before storing.
    """
    reader = reader or AutoReader()
    cache_dir = Path(cache_dir)
    cache_dir.mkdir(parents=True, exist_ok=True)
    written = 0
    for record in records:
        path = packed_path(cache_dir, record)
        if path.exists() and not overwrite:
            continue
        frames = reader(record, range(record.n_frames))
        if size is not None and frames.shape[1:3] != (size, size):
            t = torch.from_numpy(frames).permute(0, 3, 1, 2).contiguous(memory_format=torch.channels_last)
            t = F.interpolate(t, size=(size, size), mode="bilinear", align_corners=False, antialias=True)
            frames = t.permute(0, 2, 3, 1).contiguous().numpy()
        with replacing(path) as tmp, open(tmp, "wb") as f:  # never leave a half-written clip behind
            np.save(f, np.ascontiguousarray(frames))
        written += path.stat().st_size
    return written


class PackedReader:
    """Reads frames from a cache written by :func:`pack_clips`; unpacked clips go to ``fallback``."""

    def __init__(self, cache_dir: str | os.PathLike[str], fallback: Any = None) -> None:
        self.cache_dir = str(cache_dir)
        self.fallback = fallback if fallback is not None else AutoReader()

    def __call__(self, record: ClipRecord, indices: Sequence[int]) -> np.ndarray:
        path = packed_path(self.cache_dir, record)
        try:
            frames = np.load(path, mmap_mode="r")
        except FileNotFoundError:
            return self.fallback(record, indices)
        except ValueError as exc:
            raise BadClipError(record.clip_id, path, f"corrupt packed clip ({exc}); delete it and re-pack") from None
        if frames.shape[0] != record.n_frames:
            raise BadClipError(
                record.clip_id, path,
                f"packed clip has {frames.shape[0]} frames, the record {record.n_frames}; the "
                "source changed since packing: delete the cache and re-pack",
            )
        return np.ascontiguousarray(frames[np.asarray(indices, dtype=np.int64)])
