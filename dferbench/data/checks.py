"""``dferbench check-data``: everything wrong with a dataset, in one report.

Two layers. A dataset plugin may register its own ``check(options, report)``: the
DFEW/FERV39k/MAFW/custom one parses the annotation files leniently and reports every bad
line with its file and line, every missing clip and every undecodable frame file. Then,
for every registered dataset, the generic checks run on the dataset as its factory builds
it: empty test splits, folds without training clips, labels out of range, clips without
frames, duplicate clips in a split, clips in both train and test of a fold, and (unless
the dataset's own check decoded its files already) every frame the sampler can draw
read through the dataset's reader.
"""

from __future__ import annotations

from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Callable, Mapping

import numpy as np

from dferbench.errors import DferbenchError

if TYPE_CHECKING:
    from dferbench.data.records import ClipRecord, DFERDataset
    from dferbench.plugin.specs import DatasetSpec

CHECK_KINDS: dict[str, tuple[str, bool]] = {
    "layout": ("dataset layout", True),
    "malformed_line": ("malformed annotation lines", True),
    "label_out_of_range": ("labels out of range", True),
    "missing_clip": ("clips missing on disk", True),
    "empty_clip": ("clips without frames", True),
    "unreadable": ("clips that cannot be opened", True),
    "corrupt": ("corrupt or truncated images/videos (found by decoding them)", True),
    "bad_frames": ("clips whose reader returns frames of the wrong shape or type", True),
    "duplicate": ("duplicate clips in a split", True),
    "train_test_overlap": ("clips in both train and test of a fold", True),
    "empty_split": ("folds without test clips", True),
    "no_training_clips": ("folds without training clips (only models that do not train can run)", False),
    "count_mismatch": ("annotated frame counts that disagree with the disk", False),
}
"""Finding kind -> (title in the report, whether it makes the data unusable)."""


@dataclass
class Finding:
    kind: str
    message: str


@dataclass
class CheckReport:
    """What ``dferbench check-data`` found; ``ok`` means the data is usable as it stands.

    A dataset's own check adds findings with :meth:`add` (kinds: :data:`CHECK_KINDS`),
    sets ``folds`` and ``clips`` when it knows them, and reads ``decode`` (decode every
    frame, or only check listings), ``workers`` and ``progress(done, total)``.
    """

    dataset: str
    root: str
    decode: bool = True
    workers: int = 4
    progress: Callable[[int, int], None] | None = None
    folds: list[int] = field(default_factory=list)
    clips: int = 0
    frames_decoded: int = 0
    decoded: bool = False
    """Whether every frame file was decoded (by :func:`decode_files`)."""
    findings: list[Finding] = field(default_factory=list)

    def add(self, kind: str, message: str) -> None:
        """Record one problem of ``kind`` (a key of :data:`CHECK_KINDS`)."""
        if kind not in CHECK_KINDS:
            raise ValueError(f"unknown check-data finding kind {kind!r}; valid: {', '.join(CHECK_KINDS)}")
        self.findings.append(Finding(kind, message))

    def count(self, kind: str) -> int:
        return sum(1 for f in self.findings if f.kind == kind)

    @property
    def ok(self) -> bool:
        return not any(CHECK_KINDS[f.kind][1] for f in self.findings)

    def format(self, limit: int = 10) -> str:
        """A human-readable report: a summary line, then each kind of problem with examples."""
        head = (
            f"check-data {self.dataset} (root: {self.root or '-'}): {self.clips} clips, "
            f"folds {self.folds or '-'}, {self.frames_decoded} frames decoded: "
            + ("OK" if self.ok else "PROBLEMS FOUND")
        )
        lines = [head]
        for kind, (title, fatal) in CHECK_KINDS.items():
            hits = [f for f in self.findings if f.kind == kind]
            if not hits:
                continue
            lines.append(f"  [{'error' if fatal else 'note'}] {title}: {len(hits)}")
            lines += [f"      {f.message}" for f in hits[:limit]]
            if len(hits) > limit:
                lines.append(f"      ... and {len(hits) - limit} more")
        kinds = {f.kind for f in self.findings}
        if "count_mismatch" in kinds:
            lines.append("  Frame-count mismatches are harmless here: clips are sampled from the "
                         "frames on disk (the official loader would index the annotated count).")
        if kinds & {"missing_clip", "empty_clip", "unreadable"}:
            lines.append("  Fix the files, or set data.skip_bad_clips=true to drop the clips that "
                         "are missing, empty or cannot be opened.")
        if kinds & {"corrupt", "bad_frames"}:
            lines.append("  Re-extract the corrupt frames and videos: they come to light only by decoding, "
                         "so data.skip_bad_clips does not drop them, and a run stops at the first one.")
        return "\n".join(lines)


def check_dataset(spec: DatasetSpec, options: Mapping[str, Any], *, decode: bool = True, num_frames: int = 16,
                  workers: int = 4, progress: Callable[[int, int], None] | None = None) -> CheckReport:
    """Check the dataset of ``spec`` as its ``[data]`` ``options`` describe it: its own
    check first (when it registers one), then the generic checks on the built dataset.

    ``decode=False`` checks listings and split files only. ``num_frames`` frames per clip
    are sampled in a run; every frame the sampler can draw is decoded.
    """
    from dferbench.plugin.boundary import call

    report = CheckReport(spec.name, str(options.get("root") or options.get("file") or ""), decode=decode,
                         workers=workers, progress=progress)
    if spec.check is not None:
        try:
            call(spec.plugin, f"check of dataset {spec.name!r}", spec.check, options, report)
        except DferbenchError as exc:
            report.add("layout", str(exc))
        if not report.ok:  # building would only stop at the first of these
            return report
    try:
        dataset = spec.build(options)
    except DferbenchError as exc:
        report.add("layout", str(exc))
        return report
    check_structure(dataset, report)
    if decode and not report.decoded:
        decode_sampled(dataset, report, num_frames)
    return report


def _all_records(dataset: DFERDataset) -> list[ClipRecord]:
    unique: dict[str, ClipRecord] = {}
    for fold in dataset.folds:
        for split in ("train", "test"):
            for r in dataset.splits[fold].get(split, []):
                unique.setdefault(r.source, r)
    return list(unique.values())


def check_structure(dataset: DFERDataset, report: CheckReport) -> None:
    """The generic checks that need no decoding: splits, labels, frame counts, duplicates, overlap."""
    if not dataset.classes:
        report.add("layout", f"{dataset.name}: the dataset lists no classes")
    if not dataset.splits:
        report.add("layout", f"{dataset.name}: the dataset has no folds")
    report.folds = report.folds or list(dataset.folds)
    records = _all_records(dataset)
    report.clips = report.clips or len(records)
    n = len(dataset.classes)
    for r in records:
        if not isinstance(r.label, (int, np.integer)) or not 0 <= r.label < n:
            report.add("label_out_of_range", f"clip {r.clip_id!r} ({r.source}): label {r.label!r} is not a class id "
                                             f"0..{n - 1} ({', '.join(dataset.classes)})")
        if r.n_frames < 1:
            report.add("empty_clip", f"clip {r.clip_id!r} ({r.source}): n_frames is {r.n_frames}")
    for fold in dataset.folds:
        parts = dataset.splits[fold]
        if not parts.get("test"):
            report.add("empty_split", f"fold {fold}: the test split has no clips")
        if not parts.get("train"):
            report.add("no_training_clips", f"fold {fold}: the train split has no clips")
        for split in ("train", "test"):
            seen: set[str] = set()
            for r in parts.get(split, []):
                if r.clip_id in seen:
                    report.add("duplicate", f"fold {fold} {split}: clip {r.clip_id!r} is listed twice")
                seen.add(r.clip_id)
        train = {r.source for r in parts.get("train", [])}
        for r in parts.get("test", []):
            if r.source in train:
                report.add("train_test_overlap", f"fold {fold}: clip {r.clip_id!r} ({r.source}) is in train and test")


def decode_sampled(dataset: DFERDataset, report: CheckReport, num_frames: int, chunk: int = 64) -> None:
    """Read every frame the sampler can draw from each clip (all of them once a clip is
    longer than ``num_frames``; with fewer, the sampler repeats the last) through the
    dataset's reader, and check what comes back: uint8 ``[T, H, W, 3]``."""
    records = _all_records(dataset)
    for done, r in enumerate(records, 1):
        if r.n_frames < 1:
            continue  # reported by check_structure
        indices = np.arange(r.n_frames)
        try:
            for start in range(0, len(indices), chunk):
                part = indices[start:start + chunk]
                frames = dataset.reader(r, part)
                if (not isinstance(frames, np.ndarray) or frames.dtype != np.uint8 or frames.ndim != 4
                        or frames.shape[0] != len(part) or frames.shape[3] != 3):
                    shape = getattr(frames, "shape", None)
                    report.add("bad_frames", f"clip {r.clip_id!r} ({r.source}): frames {part[0]}..{part[-1]} came "
                                             f"back as {type(frames).__name__} {getattr(frames, 'dtype', '')} "
                                             f"{shape}, not uint8 [{len(part)}, H, W, 3]")
                    break
                report.frames_decoded += len(part)
        except DferbenchError as exc:
            report.add("corrupt", str(exc))
        except Exception as exc:  # a plugin's reader: any exception is a finding, not a crash
            report.add("corrupt", f"clip {r.clip_id!r} ({r.source}): {type(exc).__name__}: {' '.join(str(exc).split())}")
        if report.progress is not None:
            report.progress(done, len(records))


def decode_files(records: Iterable[ClipRecord], report: CheckReport, order: str = "natural") -> None:
    """Decode every frame file (frame folders) or every frame (video files) of ``records``,
    with ``report.workers`` threads; each failure becomes a ``corrupt`` finding. For a
    dataset's own check of clips on disk; sets ``report.decoded``."""
    from PIL import Image

    from dferbench.data.readers import BadClipError, VideoFileReader, is_video_file, list_frames

    records = list(records)

    def check(record: ClipRecord) -> tuple[int, list[str]]:
        problems: list[str] = []
        if is_video_file(record.source):
            videos = VideoFileReader(cache_size=1)  # one per call: readers are not thread-safe
            try:
                return videos.verify(record.source, record.clip_id), problems
            except BadClipError as exc:
                return 0, [str(exc)]
        decoded = 0
        for path in list_frames(record.source, order):
            try:
                with Image.open(path) as image:
                    image.load()
                decoded += 1
            except Exception as exc:  # PIL: OSError, SyntaxError, ValueError, DecompressionBombError
                problems.append(str(BadClipError(record.clip_id, path, f"corrupt or truncated image ({exc})")))
        return decoded, problems

    # PIL and FFmpeg release the GIL while decoding, so threads scale.
    with ThreadPoolExecutor(max_workers=max(1, report.workers)) as pool:
        for done, (decoded, problems) in enumerate(pool.map(check, records), 1):
            report.frames_decoded += decoded
            for p in problems:
                report.add("corrupt", p)
            if report.progress is not None:
                report.progress(done, len(records))
    report.decoded = True
