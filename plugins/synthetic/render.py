"""The embedded benchmark: procedurally rendered cartoon face clips, no files needed.

Every clip is a small face video drawn with numpy. Expressions are composed of facial
actions in the spirit of FACS action units (``ACTION_UNITS``); each class activates the
units FACS/EMFACS associates with it (``EMOTION_AUS``) at a random per-clip intensity,
rising from a neutral face to an apex and (often) falling again, with per-clip timing.
On top of that come nuisances a model must ignore: identity (face shape, skin, hair,
eye spacing, resting expression), head pose and its drift, lighting, noise, blinks,
speech-like mouth movement, a few weak stray actions, and occasional occlusion by a bar
or a hand.

Classes that differ only in their dynamics: **surprise and fear** share one appearance
(brows raised, upper lids raised, jaw dropped, with a weak brow lowerer and lip
stretcher, i.e. the overlap of their FACS prototypes) and one distribution of timing
parameters, but surprise snaps to its apex within the first frames and fades slowly,
while fear is the exact time reversal: it creeps up slowly and peaks near the end.
Their frames form the same multiset in distribution, so a frame-averaged model sees
nothing to separate them; only frame order does. The other classes overlap on purpose
(sadness / helplessness / disappointment, anger / disgust / anxiety, happiness /
contempt, weak expressions versus neutral faces with stray actions) so a tiny model
does not reach 100%. Disappointment also has an order cue: a brief early smile that
collapses into pressed, downturned lips.

Domains (:data:`DOMAINS`) set the nuisance distributions. ``synthetic`` is the
benchmark's; ``synthetic-wild`` is a shifted domain for transfer tests: other identities
(random streams of its own), wider head poses and drift, darker and more directional
light with colour casts, more occlusion, more sensor noise and a camera blur. Expressions,
their timing and the class proportions are the same in both.

Everything is a pure function of ``(domain, seed, clip index)`` and ``(domain, seed,
subject index)``: a clip's ``source`` is ``"<domain>:<seed>:<clip index>"`` (e.g.
``"synthetic:0:17"``), and the reader renders exactly the requested frames, identically
in any process.

The code: :mod:`~dferbench_plugins.synthetic.faces` (actions, domains, identities, each
clip's parameters), :mod:`~dferbench_plugins.synthetic.motion` (the state at frame ``t``),
:mod:`~dferbench_plugins.synthetic.draw` (the pixels); this module: the reader and the
dataset.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np

from dferbench import DFEW_CLASSES, MAFW_CLASSES, ClipRecord, DFERDataset
from dferbench_plugins.synthetic.draw import render_frames
from dferbench_plugins.synthetic.faces import (
    _STREAM_LAYOUT,
    _STREAM_LENGTH,
    ACTION_UNITS,
    AU_KEYS,
    DOMAINS,
    EMOTION_AUS,
    ClipParams,
    Domain,
    Identity,
    _parse_source,
    _rng,
    clip_params,
)
from dferbench_plugins.synthetic.motion import apex_frame, frame_state

__all__ = [
    "ACTION_UNITS",
    "AU_KEYS",
    "DFEW_CLASSES",
    "DOMAINS",
    "EMOTION_AUS",
    "MAFW_CLASSES",
    "ClipParams",
    "Domain",
    "Identity",
    "SyntheticReader",
    "apex_frame",
    "clip_params",
    "frame_state",
    "make_synthetic_dataset",
    "render_frames",
    "write_synthetic_tree",
]


# Fold-1 training counts of the real sets (datasets.md), used as class proportions.
DFEW_FOLD1_COUNTS = (1956, 1515, 2135, 1738, 1175, 116, 721)
MAFW_FOLD1_COUNTS = (993, 1176, 910, 1112, 857, 511, 500, 188, 732, 209, 145)


@dataclass(frozen=True)
class SyntheticReader:
    """Frame reader for synthetic clips; picklable, so DataLoader workers can use it."""

    image_size: int = 64

    def __call__(self, record: ClipRecord, indices: Sequence[int]) -> np.ndarray:
        idx = np.asarray(indices, dtype=np.int64).reshape(-1)
        bad = [int(i) for i in idx if not 0 <= i < record.n_frames]
        if bad:
            raise ValueError(f"clip {record.clip_id}: frame indices {bad[:5]} outside "
                             f"0..{record.n_frames - 1}")
        return render_frames(clip_params(record), idx, self.image_size)


# --------------------------------------------------------------------------------------
# Dataset


def _class_counts(num_classes: int, num_clips: int, num_folds: int) -> list[int]:
    ref = np.array(DFEW_FOLD1_COUNTS if num_classes == 7 else MAFW_FOLD1_COUNTS, dtype=np.float64)
    per_fold_min = min(2, num_clips // (num_folds * num_classes))
    if per_fold_min < 1:
        raise ValueError(f"{num_clips} clips cannot give each of {num_classes} classes a clip in "
                         f"each of {num_folds} test folds; use at least {num_folds * num_classes}")
    floor = per_fold_min * num_folds
    target = ref / ref.sum() * num_clips
    counts = np.maximum(np.round(target).astype(int), floor)
    while counts.sum() != num_clips:
        excess = counts - target
        if counts.sum() > num_clips:
            movable = np.where(counts > floor, excess, -np.inf)
            counts[int(np.argmax(movable))] -= 1
        else:
            counts[int(np.argmin(excess))] += 1
    return [int(c) for c in counts]


def _clip_length(seed: int, index: int, domain: Domain = DOMAINS["synthetic"]) -> int:
    r = _rng(seed, _STREAM_LENGTH + domain.stream, index)
    if r.uniform() < 0.12:
        return int(r.integers(10, 16))
    return int(r.integers(16, 61))


def make_synthetic_dataset(num_classes: int = 7, num_clips: int = 400, num_folds: int = 5,
                           image_size: int = 64, seed: int = 0, domain: str = "synthetic") -> DFERDataset:
    """Build the synthetic benchmark: ``num_clips`` clips in ``num_folds`` folds.

    Classes follow DFEW's order (7) or MAFW's (11) with the real sets' imbalance, every
    class keeping at least one (usually two) clips in each test fold. Folds are
    subject-independent: fold ``k`` (1-based) tests on identity group ``k`` and trains
    on the others. Only the records are built here; pixels are rendered on demand by
    the dataset's reader. ``domain`` (a key of :data:`DOMAINS`) picks the nuisances; the
    dataset is named after it, with ``-11`` for 11 classes.
    """
    if domain not in DOMAINS:
        raise ValueError(f"unknown synthetic domain {domain!r}; valid: {', '.join(DOMAINS)}")
    d = DOMAINS[domain]
    if num_classes not in (7, 11):
        raise ValueError(f"num_classes must be 7 (DFEW order) or 11 (MAFW order), got {num_classes}")
    if num_folds < 2:
        raise ValueError(f"num_folds must be at least 2, got {num_folds}")
    if seed < 0:
        raise ValueError(f"seed must be non-negative, got {seed}")
    if image_size < 8:
        raise ValueError(f"image_size must be at least 8, got {image_size}")
    counts = _class_counts(num_classes, num_clips, num_folds)
    labels = np.repeat(np.arange(num_classes), counts)
    folds = np.arange(num_clips) % num_folds  # dealing class-sorted labels spreads each class

    r = _rng(seed, _STREAM_LAYOUT + d.stream, 0)
    clip_index = r.permutation(num_clips)
    subject_of = np.empty(num_clips, dtype=np.int64)
    next_subject = 0
    for f in range(num_folds):
        members = np.flatnonzero(folds == f)
        n_subj = max(2, len(members) // 5) if len(members) >= 2 else 1
        subject_of[members] = next_subject + r.permutation(np.arange(len(members)) % n_subj)
        next_subject += n_subj
    relabel = r.permutation(next_subject)
    subject_of = relabel[subject_of]

    records: list[tuple[int, ClipRecord]] = []
    for j in range(num_clips):
        ci, subj = int(clip_index[j]), int(subject_of[j])
        rec = ClipRecord(clip_id=f"s{subj:04d}_c{ci:04d}", source=f"{domain}:{seed}:{ci}",
                         n_frames=_clip_length(seed, ci, d), label=int(labels[j]), subject=f"s{subj:04d}")
        records.append((int(folds[j]), rec))
    records.sort(key=lambda fr: _parse_source(fr[1].source)[1])
    splits = {
        k + 1: {"train": [rec for f, rec in records if f != k], "test": [rec for f, rec in records if f == k]}
        for k in range(num_folds)
    }
    return DFERDataset(
        name=domain if num_classes == 7 else f"{domain}-11",
        classes=list(DFEW_CLASSES if num_classes == 7 else MAFW_CLASSES),
        splits=splits, reader=SyntheticReader(image_size), augmentation="none",
    )


def _all_records(dataset: DFERDataset) -> list[ClipRecord]:
    seen: dict[str, ClipRecord] = {}
    for fold in dataset.folds:
        for split in ("train", "test"):
            for rec in dataset.split(fold, split):
                seen.setdefault(rec.clip_id, rec)
    return sorted(seen.values(), key=lambda rec: rec.clip_id)


def write_synthetic_tree(dataset: DFERDataset, root: Path, quality: int = 95,
                         name: str | None = None) -> Path:
    """Write the dataset as JPEG frame folders plus DFER-CLIP annotation files.

    Frames go to ``root/frames/<clip_id>/00001.jpg ...``; each fold's splits go to
    ``root/annotations/<NAME>_set_<k>_<train|test>.txt``, one ``<absolute frame dir>
    <n_frames> <label>`` line per clip and no newline after the last line, like the
    released files. ``NAME`` defaults to ``DFEW`` for 7 classes and ``MAFW`` for 11,
    so loaders of the real layouts can read the tree. Returns ``root``.
    """
    from PIL import Image

    root = Path(root).resolve()
    name = name or ("DFEW" if len(dataset.classes) == 7 else "MAFW")
    frames_root = root / "frames"
    ann_root = root / "annotations"
    ann_root.mkdir(parents=True, exist_ok=True)
    for rec in _all_records(dataset):
        clip_dir = frames_root / rec.clip_id
        clip_dir.mkdir(parents=True, exist_ok=True)
        frames = dataset.reader(rec, range(rec.n_frames))
        for i, frame in enumerate(frames):
            Image.fromarray(frame).save(clip_dir / f"{i + 1:05d}.jpg", quality=quality)
    for fold in dataset.folds:
        for split in ("train", "test"):
            lines = [f"{frames_root / rec.clip_id} {rec.n_frames} {rec.label}"
                     for rec in dataset.split(fold, split)]
            (ann_root / f"{name}_set_{fold}_{split}.txt").write_text("\n".join(lines))
    return root
