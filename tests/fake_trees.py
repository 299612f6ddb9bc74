"""Dataset trees in the official DFEW layout and DFER-CLIP annotation files, for the loader tests.

Paths in the annotation files are absolute paths from a machine that is not this one, as
in the released files.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Iterable, Sequence

from dferbench.testing import write_frames

# The prefix of the paths in the released DFER-CLIP annotation files.
AUTHORS_PREFIX = "/data/EECS-IoannisLab/datasets"


def make_dfew_tree(
    root: str | os.PathLike[str],
    clips: dict[int, tuple[int, int]],
    folds: dict[int, tuple[Iterable[int], Iterable[int]]],
    *,
    size: int = 32,
) -> Path:
    """A DFEW release: ``Clip/clip_224x224/<id>/`` frames and ``EmoLabel_DataSplit`` CSVs.

    ``clips`` maps video id -> (frames, DFEW label 1..7); ``folds`` maps k -> (train ids, test ids).
    """
    root = Path(root)
    for vid, (n, _) in clips.items():
        write_frames(root / "Clip" / "clip_224x224" / f"{vid:05d}", n, size=size, seed=vid)
    for k, (train, test) in folds.items():
        for split, ids in (("train", train), ("test", test)):
            folder = root / "EmoLabel_DataSplit" / f"{split}(single-labeled)"
            folder.mkdir(parents=True, exist_ok=True)
            rows = ["video_name,label"] + [f"{vid},{clips[vid][1]}" for vid in ids]
            (folder / f"set_{k}.csv").write_text("\n".join(rows) + "\n")
    return root


def annotation_line(path: str, n: int, label: int) -> str:
    return f"{path} {n} {label}"


def write_annotation(path: str | os.PathLike[str], lines: Sequence[str], trailing_newline: bool = False) -> Path:
    """Write an annotation file; by default without a final newline, like the released files."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(lines) + ("\n" if trailing_newline else ""))
    return path
