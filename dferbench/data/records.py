"""What a dataset plugin hands the harness: clip records, splits and a frame reader."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol, Sequence

import numpy as np


@dataclass(frozen=True)
class ClipRecord:
    """One labelled clip.

    ``source`` is what the dataset's reader understands: a frame folder, a video file,
    or a synthetic clip key. ``n_frames`` is the number of frames the sampler draws
    from (for frame folders: the files on disk, not the annotation's claim).
    """

    clip_id: str
    source: str
    n_frames: int
    label: int
    subject: str | None = None


class FrameReader(Protocol):
    """Reads the frames at ``indices`` (0-based, into the clip's sorted frames)."""

    def __call__(self, record: ClipRecord, indices: Sequence[int]) -> np.ndarray:
        """Return uint8 RGB frames ``[len(indices), H, W, 3]``."""
        ...


@dataclass
class DFERDataset:
    """A dataset as the harness sees it, whatever its layout on disk.

    ``splits[fold]["train" | "test"]`` lists the clips of each fold; single-split
    datasets (FERV39k) have one fold, numbered 1. ``augmentation`` names the training
    augmentation the paper used for this dataset (``dfew``, ``ferv39k``, ``mafw``)
    and ``notes`` collects counts worth recording in results (e.g. frame-count
    mismatches between the annotation and the disk). ``emotions[i]`` is the canonical name
    of class ``i`` (one of :data:`dferbench.EMOTIONS`, or any name for a class outside them); it
    defaults to the class names, so a dataset whose classes are named otherwise
    ("happy", "angry") declares it to take part in cross-dataset transfer.
    """

    name: str
    classes: list[str]
    splits: dict[int, dict[str, list[ClipRecord]]]
    reader: FrameReader
    augmentation: str = "none"
    notes: dict[str, int] = field(default_factory=dict)
    emotions: list[str] | None = None

    def __post_init__(self) -> None:
        if self.emotions is None:
            self.emotions = list(self.classes)
        elif len(self.emotions) != len(self.classes) or len(set(self.emotions)) != len(self.emotions):
            raise ValueError(f"dataset {self.name!r}: emotions {self.emotions} must name each of its "
                             f"{len(self.classes)} classes {self.classes} once")

    @property
    def folds(self) -> list[int]:
        return sorted(self.splits)

    def split(self, fold: int, split: str) -> list[ClipRecord]:
        if fold not in self.splits:
            raise KeyError(f"dataset {self.name!r} has no fold {fold}; valid folds: {self.folds}")
        return self.splits[fold][split]
