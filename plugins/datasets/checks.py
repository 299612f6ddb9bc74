"""``dferbench check-data``: everything wrong with a dataset on disk, in one report.

Unlike the dataset factories, which stop at the first fatal problem, the check parses
the split files leniently, looks every clip up, decodes every frame (or video) of every
clip, and reports all of it: malformed lines and labels out of range (file:line),
clips missing on disk or without frames, annotated frame counts that disagree with the
files, unreadable or truncated images and videos, duplicate clips, clips in both the
train and test split of a fold.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, Callable, Mapping

from dferbench_plugins.datasets.annotations import resolve_records
from PIL import Image

from dferbench.data.readers import (
    BadClipError,
    VideoFileReader,
    is_video_file,
    list_frames,
)
from dferbench.data.records import ClipRecord
from dferbench.errors import DferbenchError

# kind -> (title, fatal?)
KINDS: dict[str, tuple[str, bool]] = {
    "layout": ("dataset layout", True),
    "malformed_line": ("malformed annotation lines", True),
    "label_out_of_range": ("labels out of range", True),
    "missing_clip": ("clips missing on disk", True),
    "empty_clip": ("clips without frames", True),
    "unreadable": ("clips that cannot be opened", True),
    "corrupt": ("corrupt or truncated images/videos (found by decoding them)", True),
    "duplicate": ("duplicate clips in a split", True),
    "train_test_overlap": ("clips in both train and test of a fold", True),
    "count_mismatch": ("annotated frame counts that disagree with the disk", False),
}


@dataclass
class Finding:
    kind: str
    message: str


@dataclass
class CheckReport:
    """What ``check_dataset`` found; ``ok`` means the data is usable as it stands."""

    dataset: str
    root: str
    folds: list[int] = field(default_factory=list)
    clips: int = 0
    frames_decoded: int = 0
    findings: list[Finding] = field(default_factory=list)

    def add(self, kind: str, message: str) -> None:
        self.findings.append(Finding(kind, message))

    def count(self, kind: str) -> int:
        return sum(1 for f in self.findings if f.kind == kind)

    @property
    def ok(self) -> bool:
        return not any(KINDS[f.kind][1] for f in self.findings)

    def format(self, limit: int = 10) -> str:
        """A human-readable report: a summary line, then each kind of problem with examples."""
        head = (
            f"check-data {self.dataset} (root: {self.root or '-'}): {self.clips} clips, "
            f"folds {self.folds or '-'}, {self.frames_decoded} frames decoded: "
            + ("OK" if self.ok else "PROBLEMS FOUND")
        )
        lines = [head]
        for kind, (title, fatal) in KINDS.items():
            hits = [f for f in self.findings if f.kind == kind]
            if not hits:
                continue
            tag = "error" if fatal else "note"
            lines.append(f"  [{tag}] {title}: {len(hits)}")
            lines += [f"      {f.message}" for f in hits[:limit]]
            if len(hits) > limit:
                lines.append(f"      ... and {len(hits) - limit} more")
        if any(f.kind == "count_mismatch" for f in self.findings):
            lines.append("  Frame-count mismatches are harmless here: clips are sampled from the "
                         "frames on disk (the official loader would index the annotated count).")
        if any(f.kind in ("missing_clip", "empty_clip", "unreadable") for f in self.findings):
            lines.append("  Fix the files, or set data.skip_bad_clips=true to drop the clips that "
                         "are missing, empty or cannot be opened.")
        if any(f.kind == "corrupt" for f in self.findings):
            lines.append("  Re-extract the corrupt frames and videos: they come to light only by decoding, "
                         "so data.skip_bad_clips does not drop them, and a run stops at the first one.")
        return "\n".join(lines)


def check_dataset(
    dataset_name: str,
    options: Mapping[str, Any],
    *,
    decode: bool = True,
    workers: int = 4,
    progress: Callable[[int, int], None] | None = None,
) -> CheckReport:
    """Check dataset ``dataset_name`` (``dfew``, ``ferv39k``, ``mafw``, ``custom``) as ``options`` describe it.

    ``decode=False`` skips decoding (only listings and split files are checked).
    ``progress(done, total)`` is called as clips are decoded.
    """
    from dferbench_plugins.datasets.custom import custom_layout
    from dferbench_plugins.datasets.layouts import LAYOUTS

    layouts = dict(LAYOUTS, custom=custom_layout)
    report = CheckReport(dataset_name, str(options.get("root") or options.get("file") or ""))
    if dataset_name not in layouts:
        raise DferbenchError(
            f"check-data knows the datasets {', '.join(sorted(layouts))}, not {dataset_name!r}"
        )
    try:
        layout = layouts[dataset_name](options)
    except DferbenchError as exc:
        report.add("layout", str(exc))
        return report
    except OSError as exc:
        report.add("layout", f"{exc.filename or ''}: {exc.strerror or exc}")
        return report
    for problem in layout.problems:
        report.add("layout", problem)
    for error in layout.errors:
        report.add("label_out_of_range" if error.kind == "label" else "malformed_line", str(error))
    report.folds = sorted({f.fold for f in layout.files})

    order = str(options.get("frame_order") or "natural")
    cache: dict = {}
    unique: dict[str, ClipRecord] = {}
    by_split: dict[tuple[int, str], list[ClipRecord]] = {}
    reported: set[tuple[str, str]] = set()
    for f in layout.files:
        resolved = resolve_records(
            f.lines, layout.rebaser, id_components=layout.id_components, order=order, cache=cache
        )
        for issue in resolved.issues:
            if (issue.kind, issue.path) in reported:
                continue
            reported.add((issue.kind, issue.path))
            kind = {"missing": "missing_clip", "empty": "empty_clip"}.get(issue.kind, "unreadable")
            report.add(kind, str(issue))
        for clip_id, where, annotated, on_disk in resolved.mismatches:
            if ("count", clip_id) not in reported:
                reported.add(("count", clip_id))
                report.add("count_mismatch",
                           f"{where}: clip {clip_id!r} annotated {annotated} frames, {on_disk} on disk")
        seen: dict[str, str] = {}
        for line, record in zip(resolved.wheres, resolved.records):
            if record.clip_id in seen:
                report.add("duplicate", f"{line}: clip {record.clip_id!r} already listed at {seen[record.clip_id]}")
            else:
                seen[record.clip_id] = line
            unique.setdefault(record.source, record)
        by_split.setdefault((f.fold, f.split), []).extend(resolved.records)
    for fold in report.folds:
        train = {r.source: r for r in by_split.get((fold, "train"), [])}
        for r in by_split.get((fold, "test"), []):
            if r.source in train:
                report.add("train_test_overlap", f"fold {fold}: clip {r.clip_id!r} ({r.source}) is in train and test")
    report.clips = len(unique)
    if decode and unique:
        _decode_all(list(unique.values()), order, report, workers, progress)
    return report


def _decode_all(
    records: list[ClipRecord], order: str, report: CheckReport, workers: int,
    progress: Callable[[int, int], None] | None,
) -> None:
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

    done = 0
    # PIL and FFmpeg release the GIL while decoding, so threads scale.
    with ThreadPoolExecutor(max_workers=max(1, workers)) as pool:
        for decoded, problems in pool.map(check, records):
            report.frames_decoded += decoded
            for p in problems:
                report.add("corrupt", p)
            done += 1
            if progress is not None:
                progress(done, len(records))
