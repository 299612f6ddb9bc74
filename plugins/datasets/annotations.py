"""DFER-CLIP annotation files: parsing, re-basing paths onto a local root, disk counts.

Format: one clip per line, ``<frame_dir> <num_frames> <label>``, whitespace separated,
label 0-based. Blank lines are skipped, a missing final newline and CRLF endings are
fine; a path may contain spaces (the last two fields are the numbers). Anything else
is an :class:`AnnotationError` that names ``file:line``.

Re-basing rule (:class:`Rebaser`). The released files hold absolute paths from the
authors' machine (``/data/EECS-IoannisLab/datasets/DFEW/DFEW_Frame_Face/00001``). With a
``root``, a path ``P`` resolves to:

1. ``P`` itself, when ``P`` is already inside ``root``;
2. ``root / P``, when ``P`` is relative;
3. otherwise the longest trailing part of ``P`` (its last k components, k from all but
   the first down to 1) that exists under ``root`` or under one of the dataset's known
   frame folders below ``root`` (``search_dirs``, tried in order for each k). Longest
   first, so ``2_ClipsforFaceCrop/Action/Happy/0015`` wins over a bare ``0015``, which
   repeats across FERV39k's scenes;
4. ``P`` itself, when it exists (annotations already rewritten for this machine);
5. otherwise the clip is missing; it is reported at ``root / P`` for a relative ``P``,
   else at the path the rule found for the other clips of the file (the same k and
   folder), or ``root / <last component>``.

The (k, folder) that resolved the previous clip is tried first, so a whole file costs one
``stat`` per line. Without a root, relative paths resolve against the annotation file's
folder and absolute paths are used as written.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path, PurePath
from typing import Iterable, Sequence

from dferbench.data.readers import count_frames, is_video_file
from dferbench.data.records import ClipRecord
from dferbench.errors import DferbenchError


class AnnotationError(DferbenchError):
    """A bad annotation line: ``file:line: clip 'id': what is wrong`` (the clip when the
    line names one).

    ``kind`` is ``malformed`` (cannot be parsed) or ``label`` (label out of range).
    """

    def __init__(
        self, file: str | os.PathLike[str], line: int, message: str, kind: str = "malformed",
        clip: str | None = None,
    ) -> None:
        self.file = str(file)
        self.line = line
        self.message = message
        self.kind = kind
        self.clip = clip
        where = f"{self.file}:{line}: " + (f"clip {clip!r}: " if clip else "")
        super().__init__(where + message)

    def __reduce__(self):  # type: ignore[override]
        return (type(self), (self.file, self.line, self.message, self.kind, self.clip))


@dataclass(frozen=True)
class AnnotationLine:
    """One parsed line: the path as written, the annotated frame count (None: not given),
    label, and the subject (person) when the file names one (``custom``'s ``subject``)."""

    path: str
    n_frames: int | None
    label: int
    file: str
    line: int
    subject: str | None = None

    @property
    def where(self) -> str:
        return f"{self.file}:{self.line}"


def parse_annotation_text(
    text: str, file: str, num_classes: int | None = None
) -> tuple[list[AnnotationLine], list[AnnotationError]]:
    """Parse annotation text; returns the good lines and one error per bad line."""
    lines: list[AnnotationLine] = []
    errors: list[AnnotationError] = []
    for number, raw in enumerate(text.splitlines(), start=1):
        stripped = raw.strip()
        if not stripped:
            continue
        fields = stripped.rsplit(None, 2)
        if len(fields) != 3:
            errors.append(AnnotationError(
                file, number,
                f"expected '<frame_dir> <num_frames> <label>', got {stripped[:120]!r}",
            ))
            continue
        path, count_text, label_text = fields
        try:
            count = int(count_text)
            label = int(label_text)
        except ValueError:
            errors.append(AnnotationError(
                file, number,
                f"num_frames and label must be integers, got {count_text!r} and {label_text!r}",
                clip=clip_id_from_path(path),
            ))
            continue
        if count < 1:
            errors.append(AnnotationError(file, number, f"num_frames must be >= 1, got {count}",
                                          clip=clip_id_from_path(path)))
            continue
        if label < 0 or (num_classes is not None and label >= num_classes):
            valid = f"0..{num_classes - 1}" if num_classes is not None else ">= 0"
            errors.append(AnnotationError(
                file, number, f"label {label} out of range ({valid})", kind="label", clip=clip_id_from_path(path)
            ))
            continue
        lines.append(AnnotationLine(path, count, label, file, number))
    return lines, errors


def read_split_file(path: str | os.PathLike[str]) -> str:
    """The text of a split or description file: UTF-8, with or without a byte-order mark."""
    try:
        return Path(path).read_text(encoding="utf-8-sig")
    except UnicodeDecodeError as exc:
        raise DferbenchError(
            f"{path}: not UTF-8 text ({exc.reason} at byte {exc.start}); save it as UTF-8 "
            "(in Excel: 'CSV UTF-8')"
        ) from None


def parse_annotation_file(
    path: str | os.PathLike[str], num_classes: int | None = None, *, strict: bool = True
) -> tuple[list[AnnotationLine], list[AnnotationError]]:
    """Parse a DFER-CLIP annotation file. ``strict`` raises the first error instead of returning it."""
    path = Path(path)
    try:
        text = read_split_file(path)
    except FileNotFoundError:
        raise DferbenchError(f"annotation file not found: {path}") from None
    lines, errors = parse_annotation_text(text, str(path), num_classes)
    if strict and errors:
        raise errors[0]
    return lines, errors


@dataclass
class Resolved:
    """Where an annotation path lives on this machine, and whether it exists."""

    path: Path
    exists: bool


class Rebaser:
    """Maps annotation paths onto ``root`` (see the module docstring for the rule)."""

    def __init__(
        self,
        root: str | os.PathLike[str] | None,
        search_dirs: Sequence[str] = (),
        relative_to: str | os.PathLike[str] | None = None,
    ) -> None:
        self.root = Path(root).expanduser().resolve() if root else None
        self.relative_to = Path(relative_to) if relative_to else None
        bases = [self.root] if self.root else []
        if self.root:
            bases += [self.root / d for d in search_dirs if (self.root / d).is_dir()]
        self.bases = bases
        self._last: tuple[int, int] | None = None  # (k trailing parts, base index) that worked

    def _candidate(self, parts: tuple[str, ...], k: int, base: int) -> Path:
        return self.bases[base].joinpath(*parts[-k:])

    def resolve(self, path: str) -> Resolved:
        written = PurePath(path)
        if self.root is None:
            if not written.is_absolute() and self.relative_to is not None:
                p = self.relative_to / written
            else:
                p = Path(written)
            return Resolved(p, p.exists())
        if not written.is_absolute():
            p = self.root / written
            if p.exists():
                return Resolved(p, True)
        elif _is_inside(Path(written), self.root):
            return Resolved(Path(written), Path(written).exists())
        parts = written.parts[1:] if written.is_absolute() else written.parts
        if not parts:
            return Resolved(self.root, False)
        if self._last is not None and self._last[0] <= len(parts):
            p = self._candidate(parts, *self._last)
            if p.exists():
                return Resolved(p, True)
        for k in range(len(parts), 0, -1):
            for base in range(len(self.bases)):
                p = self._candidate(parts, k, base)
                if p.exists():
                    self._last = (k, base)
                    return Resolved(p, True)
        if written.is_absolute() and Path(written).exists():
            return Resolved(Path(written), True)
        if not written.is_absolute():
            return Resolved(self.root / written, False)
        if self._last is not None and self._last[0] <= len(parts):
            return Resolved(self._candidate(parts, *self._last), False)
        return Resolved(self.root / parts[-1], False)


def _is_inside(path: Path, root: Path) -> bool:
    try:
        path.relative_to(root)
        return True
    except ValueError:
        return False


@dataclass
class ClipIssue:
    """A clip that cannot be used as annotated: ``kind`` is ``missing``, ``empty`` or ``unreadable``."""

    kind: str
    clip_id: str
    path: str
    where: str
    detail: str

    def __str__(self) -> str:
        return f"{self.where}: clip {self.clip_id!r} {self.kind}: {self.path} ({self.detail})"


@dataclass
class ResolvedClips:
    """Records built from annotation lines, with what did not match the disk."""

    records: list[ClipRecord] = field(default_factory=list)
    wheres: list[str] = field(default_factory=list)
    """``file:line`` of each record."""
    mismatches: list[tuple[str, str, int, int]] = field(default_factory=list)
    """``(clip_id, file:line, annotated, on disk)`` for each count that disagrees."""
    issues: list[ClipIssue] = field(default_factory=list)


def clip_id_from_path(path: str | os.PathLike[str], components: int = 1) -> str:
    """The last ``components`` path components joined with ``/`` (a video's extension dropped)."""
    pure = PurePath(path)
    parts = (pure.parts[1:] if pure.anchor else pure.parts)[-components:]
    if not parts:
        return str(path)
    last = parts[-1]
    if is_video_file(last):
        last = os.path.splitext(last)[0]
    return "/".join((*parts[:-1], last))


def resolve_records(
    lines: Iterable[AnnotationLine],
    rebaser: Rebaser,
    *,
    id_components: int = 1,
    order: str = "natural",
    count_on_disk: bool = True,
    cache: dict[str, tuple[Resolved, int | None, str]] | None = None,
) -> ResolvedClips:
    """Resolve each line's clip on disk and build records whose ``n_frames`` is the disk's.

    Clips whose folder (or video) is missing, holds no frames, or cannot be opened are
    returned as ``issues``, not records; the caller decides whether that is an error.
    With ``count_on_disk=False`` the annotated count is trusted (no listing). ``cache``
    (path as written -> result) lets the files of several folds share one disk look-up
    per clip.
    """
    out = ResolvedClips()
    cache = {} if cache is None else cache
    for line in lines:
        clip_id = clip_id_from_path(line.path, id_components)
        if line.path not in cache:
            cache[line.path] = _look_up(line, rebaser, order, count_on_disk)
        resolved, n, problem = cache[line.path]
        source = str(resolved.path)
        if problem:
            kind, _, detail = problem.partition(":")
            out.issues.append(ClipIssue(kind, clip_id, source, line.where, detail.strip()))
            continue
        if n is None:
            if line.n_frames is None:
                raise DferbenchError(f"{line.where}: no frame count given and counting is off")
            n = line.n_frames
        elif line.n_frames is not None and n != line.n_frames:
            out.mismatches.append((clip_id, line.where, line.n_frames, n))
        out.records.append(ClipRecord(clip_id, source, n, line.label, subject=line.subject))
        out.wheres.append(line.where)
    return out


def _look_up(
    line: AnnotationLine, rebaser: Rebaser, order: str, count_on_disk: bool
) -> tuple[Resolved, int | None, str]:
    """``(where, frames on disk or None, "kind: detail" or "")`` for one annotated clip."""
    resolved = rebaser.resolve(line.path)
    if not resolved.exists:
        return resolved, None, "missing: not found on disk"
    if not count_on_disk and line.n_frames is not None:
        return resolved, None, ""
    try:
        n = count_frames(resolved.path, order)
    except DferbenchError as exc:  # a video that cannot be opened or demuxed
        return resolved, None, f"unreadable: {exc}"
    except OSError as exc:  # e.g. a file where a frame folder was expected
        return resolved, None, f"unreadable: {exc.strerror or exc}"
    if n == 0:
        return resolved, None, "empty: no .jpg/.jpeg/.png frames"
    return resolved, n, ""
