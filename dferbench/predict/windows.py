"""Windows over a track, in seconds, each sampled like a test clip.

A window is a stretch of ``window_s`` seconds; windows start every ``stride_s`` seconds
from the start of the span (a face track, or the whole video), and one more window,
aligned to the end of the span, is added when the stride grid leaves a tail uncovered.
The window's frames are those whose timestamps fall in ``[start, start + window_s)``;
they are handed to the model exactly as evaluation hands over a test clip of that many
frames: :func:`dferbench.data.sampling.segment_indices` with ``train=False`` (the middle
frame of each of ``num_frames`` equal segments, the last frame repeated when the window
has fewer frames than segments).

Defaults: the DFER-CLIP model reads 16 frames per clip. :data:`DEFAULT_WINDOW_S` = 2 s
gives 16 segments of 1/8 s each -- one sampled frame every 3-4 frames at 25-30 fps --
and lies within the lengths of the clips the models are trained on (FERV39k: 8..47
face frames per clip; DFEW: most clips a few seconds long). :data:`DEFAULT_STRIDE_S`
= 0.5 s gives a timeline with four overlapping windows per second of video.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from dferbench.data.sampling import segment_indices

DEFAULT_WINDOW_S = 2.0
DEFAULT_STRIDE_S = 0.5
_EPS = 1e-6  # seconds: timestamps that are equal up to rounding count as equal


@dataclass(frozen=True)
class Window:
    """One window: frames ``first..last`` (inclusive) of the video, its nominal time span
    ``[start_s, end_s)`` and the ``num_frames`` frame indices the model sees."""

    index: int
    first: int
    last: int
    start_s: float
    end_s: float
    frames: np.ndarray

    @property
    def centre_s(self) -> float:
        return (self.start_s + self.end_s) / 2


def span_seconds(timestamps: np.ndarray, first: int, last: int, fps: float) -> tuple[float, float]:
    """``(start, end)`` in seconds of frames ``first..last``; the last frame lasts ``1/fps``."""
    return float(timestamps[first]), float(timestamps[last]) + 1.0 / fps


def place_windows(timestamps: np.ndarray, num_frames: int, *, fps: float, window_s: float | None = DEFAULT_WINDOW_S,
                  stride_s: float = DEFAULT_STRIDE_S, first: int = 0, last: int | None = None) -> list[Window]:
    """The windows over frames ``first..last`` (default: every frame).

    Args:
        timestamps: seconds of every frame of the video, increasing.
        num_frames: frames the model reads per clip (the scorer's ``num_frames``).
        fps: the video's frame rate (the duration of its last frame).
        window_s: window length in seconds; ``None``: one window over the whole span.
        stride_s: seconds between window starts.
        first, last: the span, as frame indices (inclusive).

    Returns:
        The windows in time order; empty when the span is shorter than one window.
    """
    last = len(timestamps) - 1 if last is None else last
    if not 0 <= first <= last < len(timestamps):
        raise ValueError(f"span {first}..{last} outside the video's {len(timestamps)} frames")
    start, end = span_seconds(timestamps, first, last, fps)
    if window_s is None:
        bounds = [(start, end)]
    else:
        if window_s <= 0 or stride_s <= 0:
            raise ValueError(f"window and stride must be positive, got {window_s} s and {stride_s} s")
        if end - start < window_s - _EPS:
            return []
        count = int(np.floor((end - start - window_s) / stride_s + _EPS)) + 1
        bounds = [(start + k * stride_s, start + k * stride_s + window_s) for k in range(count)]
        if bounds[-1][1] < end - _EPS:
            bounds.append((end - window_s, end))
    span = timestamps[first:last + 1]
    windows = []
    for lo, hi in bounds:
        a = first + int(np.searchsorted(span, lo - _EPS, side="left"))
        b = first + int(np.searchsorted(span, hi - _EPS, side="left")) - 1
        if b < a:  # no frame inside (a gap in a variable-frame-rate video)
            continue
        frames = a + segment_indices(b - a + 1, num_frames, train=False)
        windows.append(Window(len(windows), a, b, float(lo), float(hi), frames))
    return windows
