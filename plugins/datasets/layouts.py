"""The real datasets (DFEW, FERV39k, MAFW) and user-described ones, from their files on disk.

Each dataset is read in two steps. A *layout* function finds and parses the split files
(no disk access beyond them; bad lines are collected, not raised), and
:func:`build_dataset` turns a layout into a :class:`DFERDataset`: it resolves every clip
on disk, counts its frames there, and decides what is fatal. ``check_dataset``
(``dferbench_plugins.datasets.checks``) reuses the layouts to report everything at once.

Frame counts: records carry the number of frames on disk, which is what the sampler
indexes into; annotation counts that disagree are counted in ``notes``.
"""

from __future__ import annotations

import csv
import io
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Mapping

from dferbench_plugins.datasets.annotations import (
    AnnotationError,
    AnnotationLine,
    ClipIssue,
    Rebaser,
    parse_annotation_file,
    read_split_file,
    resolve_records,
)
from dferbench.data.readers import AutoReader, FrameFolderReader
from dferbench.data.records import ClipRecord, DFERDataset
from dferbench.errors import DferbenchError
from dferbench_plugins.datasets import DFEW_CLASSES, FERV39K_CLASSES, MAFW_CLASSES  # noqa: F401  (re-exported)

# DFEW's split CSVs: label id -> class (1 Happy, 2 Sad, 3 Neutral, 4 Angry, 5 Surprise,
# 6 Disgust, 7 Fear). 0 marks clips without a single label; they are not in the benchmark.
DFEW_CSV_LABELS: dict[int, str] = {
    1: "happiness", 2: "sadness", 3: "neutral", 4: "anger", 5: "surprise", 6: "disgust", 7: "fear",
}
# FERV39k's own split files name the emotion folder; DFER-CLIP maps them to DFEW's order.
FERV39K_EMOTIONS: dict[str, str] = {
    "happy": "happiness", "sad": "sadness", "neutral": "neutral", "angry": "anger",
    "surprise": "surprise", "disgust": "disgust", "fear": "fear",
}

COMMON_OPTIONS: dict[str, Any] = {
    "root": "",
    "annotations": "",
    "frames_dir": "",
    "frame_order": "natural",
    "skip_bad_clips": False,
}


@dataclass
class SplitFile:
    """One parsed split file: the fold and split it defines, its lines and bad lines."""

    fold: int
    split: str
    file: str
    lines: list[AnnotationLine]
    errors: list[AnnotationError] = field(default_factory=list)


@dataclass
class Layout:
    """What the split files of a dataset say, before anything is looked up on disk."""

    name: str
    classes: list[str]
    files: list[SplitFile]
    rebaser: Rebaser
    id_components: int = 1
    augmentation: str = "none"
    problems: list[str] = field(default_factory=list)
    """Structural problems (a fold without its test file...), fatal for building."""
    other_errors: list[AnnotationError] = field(default_factory=list)
    """Bad lines that belong to no split file (e.g. a custom file's unlabelled rows)."""

    @property
    def errors(self) -> list[AnnotationError]:
        return [e for f in self.files for e in f.errors] + self.other_errors


# --------------------------------------------------------------------------- helpers


def _root(options: Mapping[str, Any], dataset: str, required: bool = True) -> Path | None:
    root = str(options.get("root") or "").strip()
    if not root:
        if required:
            raise DferbenchError(
                f"{dataset}: no dataset root; pass --set data.root=/path/to/{dataset.upper()} "
                "(the folder holding the dataset as released)"
            )
        return None
    path = Path(root).expanduser()
    if not path.is_dir():
        raise DferbenchError(f"{dataset}: data.root {path} is not a directory")
    return path


def _search_dirs(options: Mapping[str, Any], defaults: list[str]) -> list[str]:
    extra = str(options.get("frames_dir") or "").strip()
    return ([extra] if extra else []) + defaults


def _child_dir(parent: Path, pattern: str) -> Path | None:
    """The first sub-folder of ``parent`` (by name) matching ``pattern``, case-insensitively."""
    if not parent.is_dir():
        return None
    rx = re.compile(pattern, re.IGNORECASE)
    hits = sorted(p for p in parent.iterdir() if p.is_dir() and rx.search(p.name))
    return hits[0] if hits else None


def _numbered_files(folder: Path, pattern: str) -> dict[tuple[int, str], Path]:
    """Files in ``folder`` matching ``pattern`` with groups (fold, split) -> path."""
    rx = re.compile(pattern, re.IGNORECASE)
    found: dict[tuple[int, str], Path] = {}
    if folder.is_dir():
        for p in sorted(folder.iterdir()):
            m = rx.fullmatch(p.name)
            if m and p.is_file():
                found[(int(m.group(1) or 1), m.group(2).lower())] = p
    return found


def _annotation_dir(options: Mapping[str, Any], root: Path | None, dataset: str, probe: str) -> Path:
    """``data.annotations`` if set, else the first of root, root/annotation(s) holding ``probe``."""
    given = str(options.get("annotations") or "").strip()
    if given:
        path = Path(given).expanduser()
        if not path.is_dir():
            raise DferbenchError(f"{dataset}: data.annotations {path} is not a directory")
        return path
    candidates = [root, root / "annotation", root / "annotations"] if root else []
    for c in candidates:
        if c is not None and c.is_dir() and any(re.fullmatch(probe, p.name, re.I) for p in c.iterdir()):
            return c
    raise DferbenchError(
        f"{dataset}: no DFER-CLIP annotation files ({_readable(probe)}) found in "
        f"{', '.join(str(c) for c in candidates) or '(no root)'}; set data.annotations to the "
        "folder holding them (DFER-CLIP's annotation/ folder)"
    )


def _readable(pattern: str) -> str:
    return pattern.replace(r"\d+", "{k}").replace(r"\.", ".").replace("(train|test)", "{train,test}")


def _annotation_layout(
    name: str, classes: list[str], folder: Path, pattern: str, rebaser: Rebaser,
    id_components: int, single_fold: bool = False,
) -> Layout:
    files = []
    found = _numbered_files(folder, pattern)
    for (fold, split), path in sorted(found.items()):
        lines, errors = parse_annotation_file(path, len(classes), strict=False)
        files.append(SplitFile(1 if single_fold else fold, split, str(path), lines, errors))
    layout = Layout(name, classes, files, rebaser, id_components, augmentation=name)
    _check_folds(layout, folder)
    return layout


def _check_folds(layout: Layout, where: Path) -> None:
    have = {(f.fold, f.split) for f in layout.files}
    folds = sorted({f for f, _ in have})
    if not folds:
        layout.problems.append(f"{layout.name}: no split files found in {where}")
    for fold in folds:
        for split in ("train", "test"):
            if (fold, split) not in have:
                layout.problems.append(f"{layout.name}: fold {fold} has no {split} file in {where}")


# --------------------------------------------------------------------------- DFEW


def dfew_layout(options: Mapping[str, Any]) -> Layout:
    """DFEW from ``data.annotations`` (DFER-CLIP files) or the official split CSVs under root.

    Without ``annotations`` and without ``EmoLabel_DataSplit``, DFER-CLIP files found in
    ``root``, ``root/annotation`` or ``root/annotations`` are used.
    """
    root = _root(options, "dfew", required=not options.get("annotations"))
    search = _search_dirs(options, ["Clip/clip_224x224"])
    split_root = _child_dir(root, r"^emolabel_datasplit$") if root else None
    probe = r"DFEW_set_\d+_(train|test)\.txt"
    if options.get("annotations") or split_root is None:
        try:
            folder = _annotation_dir(options, root, "dfew", probe)
        except DferbenchError:
            if options.get("annotations"):
                raise
            folder = None
        if folder is not None:
            rebaser = Rebaser(root, search, relative_to=folder)
            return _annotation_layout(
                "dfew", DFEW_CLASSES, folder, r"DFEW_set_(\d+)_(train|test)\.txt", rebaser, 1
            )
    assert root is not None
    if split_root is None:
        raise DferbenchError(
            f"dfew: {root} has no EmoLabel_DataSplit folder; point data.root at the DFEW "
            "release, or set data.annotations to DFER-CLIP's annotation files"
        )
    files: list[SplitFile] = []
    layout = Layout("dfew", DFEW_CLASSES, files, Rebaser(root, search), 1, augmentation="dfew")
    for split in ("train", "test"):
        folder = _split_folder(split_root, split)
        if folder is None:
            layout.problems.append(f"dfew: no {split} folder (e.g. '{split}(single-labeled)') in {split_root}")
            continue
        for (fold, _), path in sorted(_numbered_files(folder, r"set_(\d+)()\.csv").items()):
            lines, errors = parse_dfew_csv(path, frames_dir=search[0])
            files.append(SplitFile(fold, split, str(path), lines, errors))
    if not layout.problems:
        _check_folds(layout, split_root)
    return layout


def _split_folder(split_root: Path, split: str) -> Path | None:
    hits = sorted(p for p in split_root.iterdir() if p.is_dir() and split in p.name.lower())
    single = [p for p in hits if "single" in p.name.lower()]
    return (single or hits or [None])[0]


def parse_dfew_csv(path: str | os.PathLike[str], frames_dir: str = "Clip/clip_224x224") -> tuple[
    list[AnnotationLine], list[AnnotationError]
]:
    """Parse a DFEW ``set_k.csv`` (``video_name,label`` with label 1..7 in DFEW's order)."""
    path = Path(path)
    lines: list[AnnotationLine] = []
    errors: list[AnnotationError] = []
    text = read_split_file(path)
    reader = csv.reader(io.StringIO(text))
    header: list[str] | None = None
    for row in reader:
        number = reader.line_num
        if not row or not any(c.strip() for c in row):
            continue
        if header is None:
            header = [c.strip().lower() for c in row]
            if "video_name" not in header or "label" not in header:
                errors.append(AnnotationError(
                    path, number, f"expected a header with columns video_name,label; got {row}"
                ))
                return lines, errors
            continue
        values = dict(zip(header, (c.strip() for c in row)))
        name, label_text = values.get("video_name", ""), values.get("label", "")
        try:
            video = int(Path(name).stem)
            label_id = int(float(label_text))
        except ValueError:
            errors.append(AnnotationError(
                path, number, f"video_name and label must be integers, got {name!r}, {label_text!r}",
                clip=name or None,
            ))
            continue
        if label_id not in DFEW_CSV_LABELS:
            errors.append(AnnotationError(
                path, number, f"label {label_id} out of range (1..7)", kind="label", clip=f"{video:05d}"
            ))
            continue
        label = DFEW_CLASSES.index(DFEW_CSV_LABELS[label_id])
        lines.append(AnnotationLine(f"{frames_dir}/{video:05d}", None, label, str(path), number))
    if header is None:
        errors.append(AnnotationError(path, 1, "empty file: expected a header video_name,label"))
    return lines, errors


# --------------------------------------------------------------------------- FERV39k


FERV39K_FRAME_DIRS = ["2_ClipsforFaceCrop", "2_ClipsforFaceCrop/2_ClipsforFaceCrop"]


def ferv39k_layout(options: Mapping[str, Any]) -> Layout:
    """FERV39k from DFER-CLIP's ``FERV39K_{train,test}.txt``, else from FERV39k's own
    ``{train,test}_All.csv`` (in ``data.annotations``, or ``4_setups/All_scenes`` below the root)."""
    root = _root(options, "ferv39k", required=not options.get("annotations"))
    search = _search_dirs(options, FERV39K_FRAME_DIRS)
    probe, pattern = r"FERV39K_(train|test)\.txt", r"FERV39K_()(train|test)\.txt"
    try:
        folder = _annotation_dir(options, root, "ferv39k", probe)
    except DferbenchError as exc:
        missing = str(exc)
    else:
        if _numbered_files(folder, pattern):
            rebaser = Rebaser(root, search, relative_to=folder)
            return _annotation_layout("ferv39k", FERV39K_CLASSES, folder, pattern, rebaser, 3, single_fold=True)
        missing = f"ferv39k: no DFER-CLIP annotation files (FERV39K_{{train,test}}.txt) in {folder}"
    given = str(options.get("annotations") or "").strip()
    official = Path(given).expanduser() if given else root / "4_setups" / "All_scenes" if root else None
    if official is None or not (official / "train_All.csv").is_file():
        raise DferbenchError(f"{missing}; nor FERV39k's own train_All.csv / test_All.csv (4_setups/All_scenes "
                             "below data.root, or set data.annotations to their folder)")
    if root is None:
        raise DferbenchError("ferv39k: FERV39k's own split files name clips relative to the face crops; "
                             "set data.root to the folder holding 2_ClipsforFaceCrop")
    return _ferv39k_official_layout(root, official, search)


def _ferv39k_official_layout(root: Path, folder: Path, search: list[str]) -> Layout:
    files = []
    for split in ("train", "test"):
        path = folder / f"{split}_All.csv"
        if not path.is_file():
            continue
        lines, errors = parse_ferv39k_split(path)
        files.append(SplitFile(1, split, str(path), lines, errors))
    layout = Layout("ferv39k", FERV39K_CLASSES, files, Rebaser(root, search), 3, augmentation="ferv39k")
    _check_folds(layout, folder)
    return layout


def parse_ferv39k_split(path: str | os.PathLike[str]) -> tuple[list[AnnotationLine], list[AnnotationError]]:
    """Parse FERV39k's own split file: ``<Scene>/<Emotion>/<id> <Emotion>`` per line."""
    lines: list[AnnotationLine] = []
    errors: list[AnnotationError] = []
    for number, raw in enumerate(read_split_file(path).splitlines(), 1):
        fields = raw.split()
        if not fields:
            continue
        if len(fields) != 2:
            errors.append(AnnotationError(path, number, f"expected '<Scene>/<Emotion>/<id> <Emotion>', got {raw!r}"))
            continue
        emotion = FERV39K_EMOTIONS.get(fields[1].lower())
        if emotion is None:
            errors.append(AnnotationError(
                path, number, f"unknown emotion {fields[1]!r}; valid: {', '.join(FERV39K_EMOTIONS)}",
                kind="label",
            ))
            continue
        lines.append(AnnotationLine(fields[0], None, FERV39K_CLASSES.index(emotion), str(path), number))
    return lines, errors


# --------------------------------------------------------------------------- MAFW


MAFW_FRAME_DIRS = ["data/faces", "clips_faces"]


def mafw_layout(options: Mapping[str, Any]) -> Layout:
    """MAFW from DFER-CLIP's ``MAFW_set_{k}_{train,test}.txt`` (11 classes, 5 folds)."""
    root = _root(options, "mafw", required=not options.get("annotations"))
    folder = _annotation_dir(options, root, "mafw", r"MAFW_set_\d+_(train|test)\.txt")
    rebaser = Rebaser(root, _search_dirs(options, MAFW_FRAME_DIRS), relative_to=folder)
    return _annotation_layout("mafw", MAFW_CLASSES, folder, r"MAFW_set_(\d+)_(train|test)\.txt", rebaser, 1)


# --------------------------------------------------------------------------- building


def build_dataset(layout: Layout, options: Mapping[str, Any], reader: Any = None) -> DFERDataset:
    """Resolve a layout's clips on disk and assemble the dataset; raise on anything fatal.

    Fatal: structural problems, bad lines, duplicates within a split, a clip in both the
    train and test split of a fold, and (unless ``skip_bad_clips``) clips that are
    missing, empty or cannot be opened. Frame-count mismatches are counted in ``notes``.
    """
    if layout.problems:
        raise DferbenchError("; ".join(layout.problems))
    if layout.errors:
        first = layout.errors[0]
        more = f" (and {len(layout.errors) - 1} more bad lines)" if len(layout.errors) > 1 else ""
        raise DferbenchError(f"{first}{more}; run `dferbench check-data` for the full list")
    order = str(options.get("frame_order") or "natural")
    skip = bool(options.get("skip_bad_clips", False))
    cache: dict = {}
    splits: dict[int, dict[str, list[ClipRecord]]] = {}
    mismatched: set[str] = set()
    skipped: dict[str, ClipIssue] = {}
    for f in layout.files:
        resolved = resolve_records(
            f.lines, layout.rebaser, id_components=layout.id_components, order=order, cache=cache
        )
        mismatched.update(m[0] for m in resolved.mismatches)
        for issue in resolved.issues:
            if not skip:
                n_bad = len({i.path for i in resolved.issues})
                raise DferbenchError(
                    f"{issue}. {n_bad} clip(s) of {f.file} cannot be used; "
                    + (_nothing_found(layout.rebaser) if not resolved.records else "")
                    + "fix the root or the files (`dferbench check-data` lists them all), or set "
                    "data.skip_bad_clips=true to drop them"
                )
            skipped.setdefault(issue.path, issue)
        splits.setdefault(f.fold, {})[f.split] = _unique(resolved.records, f)
    for fold, parts in splits.items():
        _no_overlap(fold, parts)
    notes = {"frame_count_mismatches": len(mismatched), "skipped_bad_clips": len(skipped)}
    if reader is None:
        reader = FrameFolderReader(order=order)
    return DFERDataset(layout.name, list(layout.classes), splits, reader, layout.augmentation, notes)


def _nothing_found(rebaser: Rebaser) -> str:
    where = ", ".join(str(b) for b in rebaser.bases) or "(no data.root)"
    return (f"none of them was found below {where}: if the clip folders are elsewhere, point "
            "data.root at their parent or set data.frames_dir to their folder; otherwise ")


def _unique(records: list[ClipRecord], f: SplitFile) -> list[ClipRecord]:
    seen: dict[str, int] = {}
    for i, r in enumerate(records):
        if r.clip_id in seen:
            raise DferbenchError(
                f"{f.file}: clip {r.clip_id!r} is listed twice in the fold {f.fold} {f.split} split; "
                "remove the duplicate line (`dferbench check-data` lists every duplicate)"
            )
        seen[r.clip_id] = i
    return records


def _no_overlap(fold: int, parts: dict[str, list[ClipRecord]]) -> None:
    train = {r.source for r in parts.get("train", [])}
    both = [r for r in parts.get("test", []) if r.source in train]
    if both:
        raise DferbenchError(
            f"fold {fold}: {len(both)} clip(s) are in both train and test, e.g. {both[0].clip_id!r} "
            f"({both[0].source}); the split files leak test clips into training. Fix them "
            "(`dferbench check-data` lists all)"
        )


LAYOUTS: dict[str, Callable[[Mapping[str, Any]], Layout]] = {
    "dfew": dfew_layout,
    "ferv39k": ferv39k_layout,
    "mafw": mafw_layout,
}


def build_dfew(options: Mapping[str, Any]) -> DFERDataset:
    """DFEW: 7 classes, 5 folds (official CSVs or DFER-CLIP annotation files)."""
    return build_dataset(dfew_layout(options), options)


def build_ferv39k(options: Mapping[str, Any]) -> DFERDataset:
    """FERV39k: 7 classes (DFEW order), one train/test split as fold 1."""
    return build_dataset(ferv39k_layout(options), options)


def build_mafw(options: Mapping[str, Any]) -> DFERDataset:
    """MAFW: 11 classes, 5 folds (DFER-CLIP annotation files)."""
    return build_dataset(mafw_layout(options), options)


def build_custom(options: Mapping[str, Any]) -> DFERDataset:
    """A dataset described by a CSV or TOML file (see ``dferbench_plugins.datasets.custom``)."""
    from dferbench_plugins.datasets.custom import custom_layout

    layout = custom_layout(options)
    order = str(options.get("frame_order") or "natural")
    return build_dataset(layout, options, reader=AutoReader(order=order))
