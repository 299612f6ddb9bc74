"""User datasets described by one small CSV or TOML file (dataset ``custom``).

Each clip is a frame folder or a video file, given relative to the description file's
folder (or absolute), with a label that is a class name or a 0-based class id.

CSV (header row required: a path column ``path``/``clip``/``source``, ``label``, optionally
``split``, ``fold``, ``subject``; ``#`` lines are comments; an optional ``# classes: a, b, c``
comment lists the classes in order)::

    # classes: happiness, sadness, neutral
    path,label,split
    videos/ann_01.mp4,happiness,test
    frames/bob_03,sadness,train

TOML::

    classes = ["happiness", "sadness", "neutral"]   # optional
    [[clips]]
    path = "videos/ann_01.mp4"
    label = "happiness"
    split = "test"          # optional
    fold = 1                # optional
    subject = "ann"         # optional: kept with the clip (ClipRecord.subject), no folds made from it

A ``\\`` in a path counts as ``/`` (a file written on Windows).

Splits: with a ``split`` column every clip says ``train`` or ``test`` (``fold`` optional,
default 1). With only a ``fold`` column the folds are cross-validation folds: fold k tests
on the clips marked k and trains on the rest. With neither, every clip is in the test
split of fold 1 (an evaluation-only set). Classes, when not listed, are inferred: DFEW's
7 (or MAFW's 11) in their order when every label names one of them (``happy``, ``sad``,
``angry``... accepted), else the sorted label names, or ``0..max`` for numeric labels.
"""

from __future__ import annotations

import csv
import io
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping

from dferbench_plugins.datasets.annotations import AnnotationError, AnnotationLine, Rebaser, read_split_file
from dferbench_plugins.datasets.layouts import DFEW_CLASSES, MAFW_CLASSES, Layout, SplitFile
from dferbench.data.transforms import AUGMENTATIONS
from dferbench.errors import DferbenchError

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

CUSTOM_OPTIONS: dict[str, Any] = {
    "file": "",
    "augmentation": "none",
    "frame_order": "natural",
    "skip_bad_clips": False,
}

ALIASES = {
    "happy": "happiness", "sad": "sadness", "angry": "anger", "surprised": "surprise",
    "disgusted": "disgust", "fearful": "fear", "afraid": "fear", "contemptuous": "contempt",
    "anxious": "anxiety", "helpless": "helplessness", "disappointed": "disappointment",
}
PATH_KEYS = ("path", "clip", "source")


@dataclass
class _Entry:
    path: str
    label: Any
    split: str | None
    fold: int | None
    line: int
    subject: str | None = None


def custom_layout(options: Mapping[str, Any]) -> Layout:
    """Parse the description file named by ``options["file"]`` into a layout."""
    file = _find_file(options)
    augmentation = str(options.get("augmentation") or "none")
    if augmentation not in AUGMENTATIONS:
        raise DferbenchError(
            f"custom: unknown augmentation {augmentation!r}; valid: {', '.join(AUGMENTATIONS)}"
        )
    if file.suffix.lower() == ".toml":
        entries, listed, errors = _read_toml(file)
    else:
        entries, listed, errors = _read_csv(file)
    classes, labels, label_errors = _classes(entries, listed, str(file))
    errors += label_errors
    good = [(e, labels[i]) for i, e in enumerate(entries) if labels[i] is not None]
    files, split_errors = _splits(good, str(file))
    errors += split_errors
    if not entries and not errors:
        errors.append(AnnotationError(file, 1, "no clips listed"))
    return Layout("custom", classes, files, Rebaser(None, relative_to=file.parent),
                  id_components=64, augmentation=augmentation, other_errors=errors)


def _find_file(options: Mapping[str, Any]) -> Path:
    given = str(options.get("file") or "").strip()
    if not given:
        raise DferbenchError(
            "custom: no description file; pass --set data.file=my_clips.csv (or .toml) "
            "listing each clip's path and label"
        )
    path = Path(given).expanduser()
    root = str(options.get("root") or "").strip()
    if not path.is_absolute() and root and (Path(root) / path).is_file():
        path = Path(root) / path
    if not path.is_file():
        raise DferbenchError(f"custom: description file {path} not found")
    return path


def _read_csv(file: Path) -> tuple[list[_Entry], list[str] | None, list[AnnotationError]]:
    listed: list[str] | None = None
    kept: list[str] = []
    numbers: list[int] = []
    for number, raw in enumerate(read_split_file(file).splitlines(), 1):
        stripped = raw.strip()
        if stripped.startswith("#"):
            body = stripped.lstrip("#").strip()
            if body.lower().startswith("classes:"):
                listed = [c.strip() for c in body.split(":", 1)[1].split(",") if c.strip()]
            continue
        if stripped:
            kept.append(raw)
            numbers.append(number)
    entries: list[_Entry] = []
    errors: list[AnnotationError] = []
    if not kept:
        return entries, listed, [AnnotationError(file, 1, "no header row (path,label[,split][,fold])")]
    rows = list(csv.reader(io.StringIO("\n".join(kept))))
    header = [h.strip().lower() for h in rows[0]]
    path_key = next((k for k in PATH_KEYS if k in header), None)
    if path_key is None or "label" not in header:
        return entries, listed, [AnnotationError(
            file, numbers[0], f"header must name a path column ({'/'.join(PATH_KEYS)}) and label, separated by "
            f"commas; got {rows[0]}"
        )]
    for row, number in zip(rows[1:], numbers[1:]):
        if len(row) != len(header):
            errors.append(AnnotationError(file, number, f"expected {len(header)} columns, got {len(row)}: {row}"))
            continue
        values = {h: v.strip() for h, v in zip(header, row)}
        entry = _entry(values.get(path_key, ""), values.get("label", ""), values.get("split"),
                       values.get("fold"), file, number, errors, values.get("subject"))
        if entry:
            entries.append(entry)
    return entries, listed, errors


def _read_toml(file: Path) -> tuple[list[_Entry], list[str] | None, list[AnnotationError]]:
    text = read_split_file(file)
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        return [], None, [AnnotationError(file, getattr(exc, "lineno", 1) or 1, f"invalid TOML: {exc}")]
    clips = data.get("clips", [])
    listed = data.get("classes")
    if listed is not None and not (isinstance(listed, list) and all(isinstance(c, str) for c in listed)):
        return [], None, [AnnotationError(file, 1, "classes must be a list of strings")]
    # Line of each [[clips]] header, so errors point at the entry.
    heads = [i for i, raw in enumerate(text.splitlines(), 1) if raw.strip() == "[[clips]]"]
    entries: list[_Entry] = []
    errors: list[AnnotationError] = []
    if not isinstance(clips, list):
        return [], listed, [AnnotationError(file, 1, "clips must be an array of tables ([[clips]])")]
    for i, clip in enumerate(clips):
        number = heads[i] if len(heads) == len(clips) else i + 1
        if not isinstance(clip, dict):
            errors.append(AnnotationError(file, number, "each [[clips]] entry must be a table"))
            continue
        path = next((clip[k] for k in PATH_KEYS if k in clip), "")
        fold = clip.get("fold")
        entry = _entry(str(path), clip.get("label", ""), clip.get("split"),
                       None if fold is None else str(fold), file, number, errors, clip.get("subject"))
        if entry:
            entries.append(entry)
    return entries, listed, errors


def _entry(path: str, label: Any, split: Any, fold: Any, file: Path, number: int,
           errors: list[AnnotationError], subject: Any = None) -> _Entry | None:
    if not path:
        errors.append(AnnotationError(file, number, "empty clip path"))
        return None
    if label is None or str(label).strip() == "":
        errors.append(AnnotationError(file, number, "empty label", clip=path))
        return None
    split = str(split).strip().lower() if split not in (None, "") else None
    if split is not None and split not in ("train", "test"):
        errors.append(AnnotationError(file, number, f"split must be train or test, got {split!r}", clip=path))
        return None
    fold_number = None
    if fold not in (None, ""):
        try:
            fold_number = int(str(fold))
        except ValueError:
            fold_number = -1
        if fold_number < 1:
            errors.append(AnnotationError(file, number, f"fold must be an integer >= 1, got {fold!r}", clip=path))
            return None
    subject = str(subject).strip() if subject not in (None, "") else None
    return _Entry(path.replace("\\", "/"), label, split, fold_number, number, subject)  # a file written on Windows


def _classes(entries: list[_Entry], listed: list[str] | None, file: str) -> tuple[
    list[str], list[int | None], list[AnnotationError]
]:
    """Class list and each entry's class id (None where the label is bad)."""
    errors: list[AnnotationError] = []
    raw = [e.label for e in entries]

    def numeric(v: Any) -> bool:
        return isinstance(v, int) or (isinstance(v, str) and v.strip().isdigit())

    if listed is None:
        if raw and all(numeric(v) for v in raw):
            classes = [str(i) for i in range(max(int(v) for v in raw) + 1)]
        else:
            names = {ALIASES.get(str(v).strip().lower(), str(v).strip().lower()) for v in raw if not numeric(v)}
            if names <= set(DFEW_CLASSES):
                classes = list(DFEW_CLASSES)
            elif names <= set(MAFW_CLASSES):
                classes = list(MAFW_CLASSES)
            else:
                classes = sorted(names)
        aliases = ALIASES
    else:
        classes = list(listed)
        aliases = {}
    lookup = {c.lower(): i for i, c in enumerate(classes)}
    ids: list[int | None] = []
    for e in entries:
        v = e.label
        if numeric(v):
            i = int(v)
            ok = 0 <= i < len(classes)
        else:
            key = str(v).strip().lower()
            i = lookup.get(aliases.get(key, key), -1)
            ok = i >= 0
        if ok:
            ids.append(i)
        else:
            errors.append(AnnotationError(
                file, e.line, f"label {v!r} is not one of the classes {classes} (or an id 0..{len(classes) - 1})",
                kind="label", clip=e.path,
            ))
            ids.append(None)
    return classes, ids, errors


def _splits(good: list[tuple[_Entry, int]], file: str) -> tuple[list[SplitFile], list[AnnotationError]]:
    errors: list[AnnotationError] = []
    with_split = [e for e, _ in good if e.split is not None]
    with_fold = [e for e, _ in good if e.fold is not None]
    groups: dict[tuple[int, str], list[AnnotationLine]] = {}

    def add(fold: int, split: str, e: _Entry, label: int) -> None:
        groups.setdefault((fold, split), []).append(AnnotationLine(e.path, None, label, file, e.line, e.subject))

    if with_split and len(with_split) != len(good):
        e = next(e for e, _ in good if e.split is None)
        errors.append(AnnotationError(file, e.line, "split missing: give every clip a split, or none", clip=e.path))
    elif with_split:
        for e, label in good:
            add(e.fold or 1, str(e.split), e, label)
    elif with_fold and len(with_fold) != len(good):
        e = next(e for e, _ in good if e.fold is None)
        errors.append(AnnotationError(file, e.line, "fold missing: give every clip a fold, or none", clip=e.path))
    elif with_fold:
        folds = sorted({int(e.fold) for e in with_fold if e.fold is not None})
        for k in folds:
            for e, label in good:
                add(k, "test" if e.fold == k else "train", e, label)
    else:
        for e, label in good:
            add(1, "test", e, label)
    files = [SplitFile(fold, split, file, lines) for (fold, split), lines in sorted(groups.items())]
    for fold in sorted({f for f, _ in groups}):
        for split in ("train", "test"):
            if (fold, split) not in groups:
                files.append(SplitFile(fold, split, file, []))
    return files, errors
