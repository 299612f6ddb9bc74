"""Inputs of ``predict``: video files, frame folders, folders of videos.

Frames are read with the datasets' own readers
(:class:`~dferbench.data.readers.VideoFileReader`,
:class:`~dferbench.data.readers.FrameFolderReader`), so a video is decoded exactly as a
dataset clip stored the same way. Timestamps come from the video's packet timestamps
(variable frame rates included); a frame folder has none, so its frames are spaced
``1 / frame_fps`` seconds apart. A video whose stream says it is displayed rotated
(phones) is turned upright. Anything wrong with an input is an :class:`InputError`
whose message is one line naming the file.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator, Sequence

import numpy as np

from dferbench.data.readers import (
    FrameFolderReader,
    VideoFileReader,
    is_video_file,
    list_frames,
    natural_key,
)
from dferbench.data.records import ClipRecord, FrameReader
from dferbench.errors import DferbenchError

DEFAULT_FRAME_FPS = 25.0  # frame folders carry no timing; DFEW/MAFW source videos are mostly 25 fps


class InputError(DferbenchError):
    """An input of ``predict`` cannot be used; the message names it and says what to do."""


@dataclass
class VideoSource:
    """One opened input: its frames' timestamps and a way to read them.

    ``timestamps`` are seconds from the first frame, one per frame, increasing; ``fps``
    is the nominal rate (the duration given to the last frame); ``width`` x ``height``
    the upright frame size.
    """

    name: str
    path: Path
    kind: str  # "video" | "frames"
    timestamps: np.ndarray
    fps: float
    width: int
    height: int
    rotation: int = 0  # counter-clockwise quarter turns applied to decoded frames
    reader: FrameReader = field(default=None, repr=False)  # type: ignore[assignment]

    @property
    def n_frames(self) -> int:
        return len(self.timestamps)

    @property
    def duration_s(self) -> float:
        return float(self.timestamps[-1]) + 1.0 / self.fps

    @property
    def record(self) -> ClipRecord:
        return ClipRecord(clip_id=self.name, source=str(self.path), n_frames=self.n_frames, label=-1)

    def read(self, indices: Sequence[int]) -> np.ndarray:
        """The frames at ``indices`` (0-based), uint8 RGB ``[N, H, W, 3]``, upright."""
        frames = self.reader(self.record, indices)
        return _upright(frames, self.rotation)

    def iter_frames(self, chunk: int = 64) -> Iterator[np.ndarray]:
        """Every frame in order, uint8 RGB ``[H, W, 3]`` (for the annotated video)."""
        if self.kind == "frames":
            for start in range(0, self.n_frames, chunk):
                yield from self.read(range(start, min(start + chunk, self.n_frames)))
            return
        import av

        with av.open(str(self.path)) as container:
            for frame in container.decode(video=0):
                yield _upright(frame.to_ndarray(format="rgb24")[None], self.rotation)[0]


def _upright(frames: np.ndarray, quarter_turns: int) -> np.ndarray:
    if quarter_turns % 4 == 0:
        return frames
    return np.ascontiguousarray(np.rot90(frames, k=quarter_turns, axes=(1, 2)))


def open_source(path: str | os.PathLike[str], *, frame_fps: float = DEFAULT_FRAME_FPS) -> VideoSource:
    """Open a video file or a frame folder; raises :class:`InputError` (one line)."""
    path = Path(path)
    if not path.exists():
        raise InputError(f"{path}: no such file or folder")
    if path.is_dir():
        return _open_frames(path, frame_fps)
    if not is_video_file(path):
        raise InputError(f"{path}: not a video file (known extensions: .mp4, .avi, .mkv, .webm, .mov, .m4v) "
                         "nor a folder of frames")
    return _open_video(path, frame_fps)


def _open_frames(path: Path, fps: float) -> VideoSource:
    names = list_frames(path)
    if not names:
        raise InputError(f"{path}: the folder holds no .jpg/.jpeg/.png frames and no videos")
    reader = FrameFolderReader()
    source = VideoSource(path.name, path, "frames", np.arange(len(names)) / fps, fps, 0, 0, reader=reader)
    try:
        first = source.read([0])[0]
    except DferbenchError as exc:
        raise InputError(f"{path}: {exc}") from None
    source.height, source.width = first.shape[:2]
    return source


def _open_video(path: Path, frame_fps: float) -> VideoSource:
    import av

    try:
        container = av.open(str(path))
    except Exception as exc:
        raise InputError(f"{path}: cannot be opened as a video ({exc}); the file is damaged or not a video") from None
    try:
        if not container.streams.video:
            raise InputError(f"{path}: the file has no video stream")
        stream = container.streams.video[0]
        rate = stream.average_rate or stream.guessed_rate or stream.base_rate
        fps = float(rate) if rate else frame_fps
        time_base = float(stream.time_base) if stream.time_base else None
        try:
            first = next(container.decode(stream))
        except Exception as exc:  # StopIteration and decoder errors alike
            raise InputError(f"{path}: no frame could be decoded ({type(exc).__name__}: {exc}); "
                             "the file is damaged") from None
        rotation = int(round(float(getattr(first, "rotation", 0) or 0) / 90.0)) % 4
        width, height = first.width, first.height
    finally:
        container.close()
    reader = VideoFileReader(cache_size=4)
    try:
        index = reader.index(str(path), path.name)
    except DferbenchError as exc:
        raise InputError(str(exc)) from None
    if index.seekable and time_base:
        pts = np.asarray(index.pts, dtype=np.float64)
        timestamps = (pts - pts[0]) * time_base
    else:
        timestamps = np.arange(len(index.pts)) / fps
    if rotation % 2:
        width, height = height, width
    return VideoSource(path.name, path, "video", timestamps, fps, width, height, rotation, reader)


def expand_inputs(paths: Sequence[str | os.PathLike[str]]) -> list[Path]:
    """The videos and frame folders named by ``paths``, in order.

    A video file or a folder of frames stands for itself; a folder holding video files
    stands for those videos (natural order); a folder of frame folders for each of
    them. Anything else (a missing path, an empty folder) is kept, so that opening it
    reports what is wrong with it.
    """
    out: list[Path] = []
    for p in paths:
        p = Path(p)
        if not p.is_dir():
            out.append(p)
            continue
        children = sorted(p.iterdir(), key=lambda c: natural_key(c.name))
        videos = [c for c in children if c.is_file() and is_video_file(c) and not c.name.startswith(".")]
        if videos:
            out.extend(videos)
        elif list_frames(p):
            out.append(p)
        else:
            folders = [c for c in children if c.is_dir() and not c.name.startswith(".") and list_frames(c)]
            out.extend(folders or [p])
    return out
