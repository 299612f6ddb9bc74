"""The annotation checks of ``dfew``, ``ferv39k``, ``mafw`` and ``custom`` for ``dferbench check-data``.

Unlike the dataset factories, which stop at the first fatal problem, this check parses
the split files leniently, looks every clip up, decodes every frame (or video) of every
clip, and reports all of it: malformed lines and labels out of range (file:line), clips
missing on disk or without frames, annotated frame counts that disagree with the files,
unreadable or truncated images and videos, duplicate clips, clips in both the train and
test split of a fold. The generic checks of every dataset run after it (in the core).
"""

from __future__ import annotations

from typing import Any, Mapping

from dferbench import CheckReport, ClipRecord, DferbenchError, decode_files
from dferbench_plugins.datasets.annotations import resolve_records


def check_annotations(dataset_name: str, options: Mapping[str, Any], report: CheckReport) -> None:
    """Add everything wrong with the split files and clips of ``dataset_name`` to ``report``;
    with ``report.decode``, decode every frame of every clip found."""
    from dferbench_plugins.datasets.custom import custom_layout
    from dferbench_plugins.datasets.layouts import LAYOUTS

    layouts = dict(LAYOUTS, custom=custom_layout)
    try:
        layout = layouts[dataset_name](options)
    except DferbenchError as exc:
        report.add("layout", str(exc))
        return
    except OSError as exc:
        report.add("layout", f"{exc.filename or ''}: {exc.strerror or exc}")
        return
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
    if report.decode and unique:
        decode_files(unique.values(), report, order)
