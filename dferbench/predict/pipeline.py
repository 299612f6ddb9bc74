"""``predict``: videos in, per-window expression probabilities out.

:func:`predict_videos` runs every input through open -> detect -> track -> window ->
score -> write (see :mod:`dferbench.predict`). One input failing never stops the
others: its failure becomes the ``error`` of its :class:`VideoResult`, one line, shown
in the summary table. A failure inside the scorer that is not a
:class:`~dferbench.errors.DferbenchError` is recorded the same way, with its type.
"""

from __future__ import annotations

import os
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

import numpy as np
import torch

from dferbench.errors import DferbenchError
from dferbench.predict.detection import DETECT_FPS, DETECT_MAX_SIDE, FaceDetector, detect_faces
from dferbench.predict.scorer import Scorer
from dferbench.predict.tracking import (
    DEFAULT_MARGIN,
    Box,
    Track,
    crop_square,
    link_tracks,
    main_track,
    resize_square,
    smooth_track,
)
from dferbench.predict.video import DEFAULT_FRAME_FPS, InputError, VideoSource, expand_inputs, open_source
from dferbench.predict.windows import DEFAULT_STRIDE_S, DEFAULT_WINDOW_S, Window, place_windows, span_seconds

FACE_MODES: tuple[str, ...] = ("main", "all")
BATCH_WINDOWS = 16  # windows per scorer call
THUMBNAILS = 6  # face crops kept per track for the plot

Thumbnail = tuple[float, str, np.ndarray]  # (window centre s, top class, uint8 [S, S, 3] crop)


@dataclass
class WindowPrediction:
    """One window: its time span (seconds), frames and the model's probabilities."""

    start_s: float
    end_s: float
    first_frame: int
    last_frame: int
    sampled_frames: list[int]
    probs: list[float]
    top: str


@dataclass
class TrackPrediction:
    """The windows of one face track and their summary. ``boxes`` are the smoothed face
    boxes of frames ``first_frame..last_frame`` (``x0, y0, x1, y1``)."""

    track_id: int
    main: bool
    first_frame: int
    last_frame: int
    start_s: float
    end_s: float
    detections: int
    windows: list[WindowPrediction]
    summary: dict[str, Any]
    boxes: np.ndarray = field(repr=False)
    thumbnails: list[Thumbnail] = field(default_factory=list, repr=False)

    def to_dict(self) -> dict[str, Any]:
        """Plain data for JSON: everything but the boxes and the thumbnails."""
        d = {f.name: getattr(self, f.name) for f in fields(self) if f.name not in ("boxes", "thumbnails", "windows")}
        d["windows"] = [asdict(w) for w in self.windows]
        return d


@dataclass
class VideoResult:
    """What predict found for one input; ``error`` (one line) when it failed."""

    name: str
    path: str
    classes: list[str]
    error: str | None = None
    fps: float | None = None
    n_frames: int | None = None
    duration_s: float | None = None
    width: int | None = None
    height: int | None = None
    detector: str = ""
    whole_frame: bool = False  # the detector declared the frames face crops: no detection, no crop
    detected_frames: int = 0  # sampled frames searched for faces
    frames_with_face: int = 0
    detect_ms_per_frame: float | None = None
    settings: dict[str, Any] = field(default_factory=dict)
    tracks: list[TrackPrediction] = field(default_factory=list)
    skipped_tracks: int = 0  # tracks shorter than one window (face="all")
    files: dict[str, str] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return self.error is None

    @property
    def summary(self) -> dict[str, Any]:
        """The summary of the main face's track (of the first track when the main one was
        too short; empty on failure)."""
        main = [t for t in self.tracks if t.main] or self.tracks
        return main[0].summary if main else {}

    def to_dict(self) -> dict[str, Any]:
        d = {f.name: getattr(self, f.name) for f in fields(self) if f.name != "tracks"}
        d["tracks"] = [t.to_dict() for t in self.tracks]
        d["summary"] = self.summary
        return d


def summarise(windows: Sequence[WindowPrediction], classes: Sequence[str]) -> dict[str, Any]:
    """Whole-track summary: mean probability per class over the windows, the class with
    the highest mean (``top``), and the share of windows each class tops."""
    probs = np.array([w.probs for w in windows], dtype=np.float64)  # [W, C]
    mean = probs.mean(axis=0)
    tops = probs.argmax(axis=1)
    return {
        "windows": len(windows),
        "top": classes[int(mean.argmax())],
        "top_prob": float(mean.max()),
        "mean_probs": {c: float(p) for c, p in zip(classes, mean)},
        "top_share": {classes[k]: float(np.mean(tops == k)) for k in np.unique(tops)},
    }


def _no_face(source: VideoSource, detector: str, searched: int, rate: float) -> InputError:
    return InputError(
        f"{source.path}: no face found by detector {detector!r} in the {searched} frames searched "
        f"({rate:g} per second over 0-{source.duration_s:.1f} s, {source.width}x{source.height} px); "
        f"try another detector (--face-detector mtcnn or haar), or --face-detector none if the frames "
        f"are face crops already")


def _video_too_short(source: VideoSource, window_s: float) -> InputError:
    return InputError(f"{source.path}: the video lasts {source.duration_s:.2f} s, shorter than one {window_s:g} s "
                      f"window; pass a shorter window (--window {source.duration_s:.2f} or less)")


def _too_short(source: VideoSource, track: Track, window_s: float) -> InputError:
    start, end = span_seconds(source.timestamps, track.first, track.last, source.fps)
    if end - start >= source.duration_s - 1e-6:
        return _video_too_short(source, window_s)
    return InputError(f"{source.path}: the face is followed for only {end - start:.2f} s "
                      f"({start:.2f}-{end:.2f} s of {source.duration_s:.2f} s), shorter than one {window_s:g} s "
                      f"window; pass a shorter --window, or try another --face-detector")


def _clip_frames(source: VideoSource, track_boxes: np.ndarray | None, first: int, indices: np.ndarray,
                 size: int, margin: float) -> dict[int, np.ndarray]:
    """Frame index -> what the model reads of it: the square face crop at ``size`` pixels,
    or the whole frame when ``track_boxes`` is None (frames that are face crops)."""
    wanted = np.unique(indices)
    frames = source.read(wanted)
    if track_boxes is None:
        return {int(i): f for i, f in zip(wanted, frames)}
    return {int(i): crop_square(f, track_boxes[int(i) - first], size, margin) for i, f in zip(wanted, frames)}


def _score_track(source: VideoSource, scorer: Scorer, windows: list[Window], track_boxes: np.ndarray | None,
                 first: int, margin: float, batch: int) -> tuple[list[WindowPrediction], list[Thumbnail]]:
    classes = list(scorer.classes)
    keep = set(np.linspace(0, len(windows) - 1, min(THUMBNAILS, len(windows))).round().astype(int).tolist())
    out: list[WindowPrediction] = []
    thumbs: list[Thumbnail] = []
    for start in range(0, len(windows), batch):
        group = windows[start:start + batch]
        crops = _clip_frames(source, track_boxes, first, np.concatenate([w.frames for w in group]),
                             scorer.image_size, margin)
        clips = np.stack([np.stack([crops[int(i)] for i in w.frames]) for w in group])  # [B, T, H, W, 3]
        probs = np.asarray(scorer.score(torch.from_numpy(clips)), dtype=np.float64)
        if probs.shape != (len(group), len(classes)):
            raise DferbenchError(f"the model returned probabilities of shape {probs.shape} for {len(group)} windows "
                                 f"and {len(classes)} classes ({', '.join(classes)})")
        for w, p in zip(group, probs):
            top = classes[int(p.argmax())]
            out.append(WindowPrediction(w.start_s, w.end_s, w.first, w.last, [int(i) for i in w.frames],
                                        [float(v) for v in p], top))
            if w.index in keep:
                middle = crops[int(w.frames[len(w.frames) // 2])]
                thumbs.append((w.centre_s, top, resize_square(middle, scorer.image_size)))
    return out, thumbs


def predict_video(path: str | os.PathLike[str], scorer: Scorer, detector: FaceDetector, *,
                  window_s: float | None = DEFAULT_WINDOW_S, stride_s: float = DEFAULT_STRIDE_S, face: str = "main",
                  detect_fps: float = DETECT_FPS, detect_max_side: int = DETECT_MAX_SIDE,
                  frame_fps: float = DEFAULT_FRAME_FPS, margin: float = DEFAULT_MARGIN,
                  batch_windows: int = BATCH_WINDOWS, result: VideoResult | None = None) -> VideoResult:
    """Predict one input (see :func:`predict_videos`); raises :class:`InputError` (or another
    :class:`~dferbench.errors.DferbenchError`) when it cannot. Fills and returns ``result``."""
    if face not in FACE_MODES:
        raise DferbenchError(f"face must be one of {', '.join(FACE_MODES)}, got {face!r}")
    classes = list(scorer.classes)
    name = getattr(detector, "name", type(detector).__name__)
    result = result or VideoResult(Path(path).name, str(path), classes)
    result.detector = name
    source = open_source(path, frame_fps=frame_fps)
    result.fps, result.n_frames, result.duration_s = source.fps, source.n_frames, source.duration_s
    result.width, result.height = source.width, source.height
    if window_s is not None and source.duration_s < window_s - 1e-6:
        raise _video_too_short(source, window_s)

    whole = result.whole_frame = bool(getattr(detector, "whole_frame", False))
    if whole:
        full = Box(0.0, 0.0, float(source.width), float(source.height))
        tracks = [Track(0, list(range(source.n_frames)), [full] * source.n_frames)]
    else:
        found = detect_faces(source, detector, rate=detect_fps, max_side=detect_max_side)
        result.detected_frames, result.frames_with_face = len(found.frames), found.found
        result.detect_ms_per_frame = found.ms_per_frame
        if not found.found:
            raise _no_face(source, name, len(found.frames), detect_fps)
        tracks = link_tracks(found.boxes, found.frames.tolist(), fps=source.fps)
    main = main_track(tracks)
    chosen = [main] if face == "main" else sorted(tracks, key=lambda t: t is not main)

    for track in chosen:
        windows = place_windows(source.timestamps, scorer.num_frames, fps=source.fps, window_s=window_s,
                                stride_s=stride_s, first=track.first, last=track.last)
        if not windows:
            if face == "main":
                raise _too_short(source, track, float(window_s))
            result.skipped_tracks += 1
            continue
        boxes = smooth_track(track, source.timestamps)
        predictions, thumbs = _score_track(source, scorer, windows, None if whole else boxes, track.first, margin,
                                           batch_windows)
        start, end = span_seconds(source.timestamps, track.first, track.last, source.fps)
        result.tracks.append(TrackPrediction(
            track.track_id, track is main, track.first, track.last, start, end, len(track.frames), predictions,
            summarise(predictions, classes), boxes, thumbs))
    if not result.tracks:  # face="all" and every track shorter than a window
        raise _too_short(source, main, float(window_s))
    return result


def predict_videos(inputs: Sequence[str | os.PathLike[str]], scorer: Scorer, detector: FaceDetector, *,
                   window_s: float | None = DEFAULT_WINDOW_S, stride_s: float = DEFAULT_STRIDE_S, face: str = "main",
                   output_dir: str | os.PathLike[str] | None = None, make_video: bool = False, plot: bool = True,
                   echo: Callable[[str], None] = print, progress: bool | None = None,
                   detect_fps: float = DETECT_FPS, detect_max_side: int = DETECT_MAX_SIDE,
                   frame_fps: float = DEFAULT_FRAME_FPS, margin: float = DEFAULT_MARGIN,
                   batch_windows: int = BATCH_WINDOWS, provenance: Mapping[str, Any] | None = None) -> list[VideoResult]:
    """Predict the expressions over time in each input.

    Args:
        inputs: video files, frame folders, or folders of videos / of frame folders
            (:func:`~dferbench.predict.video.expand_inputs`).
        scorer: the model (:class:`~dferbench.predict.scorer.Scorer`).
        detector: the face detector (:class:`~dferbench.predict.detection.FaceDetector`).
        window_s: window length, seconds; ``None``: one window over the whole track.
        stride_s: seconds between window starts.
        face: ``"main"`` (the largest, most persistent face) or ``"all"`` (every track
            lasting at least one window; the main one first).
        output_dir: where ``<video>/timeline.{json,csv,png}`` (and ``annotated.mp4``)
            and ``summary.{csv,json}`` go; ``None``: write nothing.
        make_video: also write the annotated MP4 (a box and the label on every frame).
        plot: write the PNG timeline.
        echo: receives one line per input and the summary table.
        progress: progress bar over the inputs (``None``: when stderr is a terminal).
        detect_fps: frames searched for faces per second of video.
        detect_max_side: frames are shrunk to this longer side for detection.
        frame_fps: the frame rate given to frame folders.
        margin: the face crop's side is ``(1 + margin)`` x the detector box's longer side.
        batch_windows: windows per scorer call.
        provenance: recorded with the settings of every result (e.g. the checkpoint's path).

    Returns:
        One :class:`VideoResult` per input, failed ones included (``error`` set).
    """
    from dferbench.predict import outputs
    from dferbench.run.progress import progress as progress_bar

    paths = expand_inputs(inputs)
    out_root = Path(output_dir) if output_dir is not None else None
    settings = {"window_s": window_s, "stride_s": stride_s, "face": face, "detect_fps": detect_fps,
                "detect_max_side": detect_max_side, "margin": margin, "num_frames": scorer.num_frames,
                "image_size": scorer.image_size, **(provenance or {})}
    results: list[VideoResult] = []
    used_names: set[str] = set()
    for path in progress_bar(paths, desc="predict", total=len(paths), enabled=progress, leave=True):
        result = VideoResult(path.name, str(path), list(scorer.classes), settings=dict(settings))
        try:
            predict_video(path, scorer, detector, window_s=window_s, stride_s=stride_s, face=face,
                          detect_fps=detect_fps, detect_max_side=detect_max_side, frame_fps=frame_fps,
                          margin=margin, batch_windows=batch_windows, result=result)
            if out_root is not None:
                folder = out_root / outputs.unique_name(path, used_names)
                result.files = outputs.write_video_outputs(result, folder, plot=plot, make_video=make_video,
                                                           margin=margin)
        except DferbenchError as exc:
            result.error = str(exc)
        except (OSError, RuntimeError, ValueError, TypeError) as exc:  # a damaged file deep in a decoder, a scorer bug
            result.error = f"{path}: {type(exc).__name__}: {exc}"
        if not result.ok:
            result.tracks = []
        echo(outputs.result_line(result))
        results.append(result)
    if out_root is not None:
        outputs.write_summary(results, out_root)
    echo(outputs.summary_table(results))
    return results
