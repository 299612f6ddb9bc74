"""Face boxes -> tracks -> smoothed per-frame boxes -> square face crops.

Detections come from frames sampled a few times a second. :func:`link_tracks` links
them greedily from one sampled frame to the next: a detection continues a track when
their boxes overlap (IoU) or, for fast motion, when its centre lies close to the
track's last centre and its size is similar. :func:`main_track` picks the face that is
largest and most persistent (the largest sum of box areas over the detections).
:func:`smooth_track` smooths the box centre and size over time (a Gaussian in seconds)
and interpolates them to every frame between the track's first and last detection.

Crops (:func:`crop_square`) are square, like DFEW's ``clip_224x224`` and every model's
input, centred on the face, with a margin. The datasets do not document their margins:
DFEW ships affine-aligned faces (its release folder is ``data_affine``), MAFW per-frame
face boxes and 68 landmarks, FERV39k only the crops. :data:`DEFAULT_MARGIN` = 0.25 makes
the square's side 1.25 x the longer side of the detector's box. On the astronaut
portrait of the tests Haar's box and MTCNN's agree within a few pixels (MTCNN's reaches
further down, to the chin), and 1.25 x either holds the whole face, hairline to chin,
with a thin border: the models were trained on whole faces. It is an option
(``margin``) because detectors differ in how tight their boxes are.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Sequence

import numpy as np
import torch
import torch.nn.functional as F

DEFAULT_MARGIN = 0.25
MIN_IOU = 0.3  # overlap that always links a detection to a track
MAX_SHIFT = 0.5  # or: centre moved by at most this fraction of the box side ...
MAX_SCALE_CHANGE = 1.5  # ... and the side changed by at most this factor
MAX_GAP_S = 1.0  # a track survives this long without a detection (interpolated across)
SMOOTH_S = 0.2  # sigma of the Gaussian smoothing the box over time, seconds


@dataclass(frozen=True)
class Box:
    """A face box in pixels, ``(x0, y0)`` top-left and ``(x1, y1)`` bottom-right
    (exclusive), with the detector's confidence (its own scale; higher is surer)."""

    x0: float
    y0: float
    x1: float
    y1: float
    score: float = 1.0

    @property
    def width(self) -> float:
        return self.x1 - self.x0

    @property
    def height(self) -> float:
        return self.y1 - self.y0

    @property
    def side(self) -> float:
        return max(self.width, self.height)

    @property
    def centre(self) -> tuple[float, float]:
        return (self.x0 + self.x1) / 2, (self.y0 + self.y1) / 2

    @property
    def area(self) -> float:
        return max(self.width, 0.0) * max(self.height, 0.0)

    def scaled(self, factor: float) -> Box:
        """The box in a frame ``factor`` times as large."""
        return Box(self.x0 * factor, self.y0 * factor, self.x1 * factor, self.y1 * factor, self.score)

    def iou(self, other: Box) -> float:
        w = min(self.x1, other.x1) - max(self.x0, other.x0)
        h = min(self.y1, other.y1) - max(self.y0, other.y0)
        inter = max(w, 0.0) * max(h, 0.0)
        union = self.area + other.area - inter
        return inter / union if union > 0 else 0.0


@dataclass
class Track:
    """One face followed across frames: its detections, at increasing frame indices."""

    track_id: int
    frames: list[int] = field(default_factory=list)
    boxes: list[Box] = field(default_factory=list)

    @property
    def first(self) -> int:
        return self.frames[0]

    @property
    def last(self) -> int:
        return self.frames[-1]

    @property
    def weight(self) -> float:
        """Size x persistence: the sum of its boxes' areas."""
        return float(sum(b.area for b in self.boxes))


def _links(track_box: Box, box: Box) -> tuple[bool, float, float]:
    """Whether ``box`` may continue a track ending in ``track_box``; (ok, iou, distance)."""
    iou = track_box.iou(box)
    (ax, ay), (bx, by) = track_box.centre, box.centre
    side = track_box.side
    distance = math.hypot(ax - bx, ay - by) / side if side > 0 else math.inf
    ratio = max(box.side, 1e-9) / max(side, 1e-9)
    similar = 1 / MAX_SCALE_CHANGE <= ratio <= MAX_SCALE_CHANGE
    return iou >= MIN_IOU or (distance <= MAX_SHIFT and similar), iou, distance


def link_tracks(detections: Sequence[Sequence[Box]], frames: Sequence[int], *, fps: float,
                max_gap_s: float = MAX_GAP_S) -> list[Track]:
    """Link per-frame detections into tracks.

    Args:
        detections: the boxes found in each sampled frame.
        frames: the frame index of each entry of ``detections``, increasing.
        fps: frames per second, to turn ``max_gap_s`` into frames.
        max_gap_s: a track not seen for longer than this ends.

    Returns:
        The tracks, in order of their first detection. Within a sampled frame the
        best-overlapping (then nearest) detection-track pairs are linked first; a
        detection that links to no track starts one.
    """
    if len(detections) != len(frames):
        raise ValueError(f"{len(detections)} detection lists for {len(frames)} frames")
    max_gap = max_gap_s * fps
    tracks: list[Track] = []
    for frame, boxes in zip(frames, detections):
        active = [t for t in tracks if frame - t.last <= max_gap]
        pairs = []
        for ti, track in enumerate(active):
            for bi, box in enumerate(boxes):
                ok, iou, distance = _links(track.boxes[-1], box)
                if ok:
                    pairs.append((-iou, distance, ti, bi))
        pairs.sort()
        used_tracks: set[int] = set()
        used_boxes: set[int] = set()
        for _, _, ti, bi in pairs:
            if ti in used_tracks or bi in used_boxes:
                continue
            used_tracks.add(ti)
            used_boxes.add(bi)
            active[ti].frames.append(int(frame))
            active[ti].boxes.append(boxes[bi])
        for bi, box in enumerate(boxes):
            if bi not in used_boxes:
                tracks.append(Track(len(tracks), [int(frame)], [box]))
    return tracks


def main_track(tracks: Sequence[Track]) -> Track:
    """The largest and most persistent track (the largest :attr:`Track.weight`)."""
    if not tracks:
        raise ValueError("no tracks")
    return max(tracks, key=lambda t: (t.weight, -t.track_id))


def smooth_track(track: Track, timestamps: np.ndarray, *, sigma_s: float = SMOOTH_S) -> np.ndarray:
    """Per-frame boxes ``[track.last - track.first + 1, 4]`` (``x0, y0, x1, y1``) for the
    frames ``track.first .. track.last``.

    The centre, width and height of the detections are smoothed with a Gaussian of
    ``sigma_s`` seconds over the detection times (0 = no smoothing), then interpolated
    linearly to each frame's time (``timestamps``, seconds, one per frame of the video).
    """
    times = timestamps[np.asarray(track.frames)]
    params = np.array([[*b.centre, b.width, b.height] for b in track.boxes], dtype=np.float64)  # [D, 4]
    if sigma_s > 0 and len(times) > 1:
        smoothed = np.empty_like(params)
        for i0 in range(0, len(times), 256):  # rows in chunks, columns within 4 sigma: long videos stay cheap
            i1 = min(i0 + 256, len(times))
            j0, j1 = np.searchsorted(times, [times[i0] - 4 * sigma_s, times[i1 - 1] + 4 * sigma_s], side="right")
            j0 = max(int(j0) - 1, 0)
            weights = np.exp(-0.5 * ((times[i0:i1, None] - times[None, j0:j1]) / sigma_s) ** 2)  # [rows, cols]
            smoothed[i0:i1] = weights @ params[j0:j1] / weights.sum(axis=1, keepdims=True)
        params = smoothed
    frame_times = timestamps[track.first:track.last + 1]
    cx, cy, w, h = (np.interp(frame_times, times, params[:, k]) for k in range(4))
    return np.stack([cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2], axis=1)


def crop_square_box(box: Sequence[float], width: int, height: int,
                    margin: float = DEFAULT_MARGIN) -> tuple[int, int, int]:
    """The square ``(x0, y0, side)`` cut around ``box`` (``x0, y0, x1, y1``) in a
    ``width x height`` frame: side = (1 + ``margin``) x the box's longer side, centred
    on the box, moved inside the frame where it fits (else centred and padded)."""
    x0, y0, x1, y1 = (float(v) for v in box)
    side = max(1, int(round(max(x1 - x0, y1 - y0) * (1 + margin))))
    left = int(round((x0 + x1) / 2 - side / 2))
    top = int(round((y0 + y1) / 2 - side / 2))
    if side <= width:
        left = min(max(left, 0), width - side)
    if side <= height:
        top = min(max(top, 0), height - side)
    return left, top, side


def crop_square(frame: np.ndarray, box: Sequence[float], size: int, margin: float = DEFAULT_MARGIN) -> np.ndarray:
    """Cut the square of :func:`crop_square_box` out of ``frame`` (uint8 ``[H, W, 3]``),
    black where it leaves the frame, resized to ``size x size`` (bilinear with
    antialiasing, like the test transform) -> uint8 ``[size, size, 3]``."""
    height, width = frame.shape[:2]
    left, top, side = crop_square_box(box, width, height, margin)
    out = np.zeros((side, side, 3), dtype=np.uint8)
    sx0, sy0 = max(left, 0), max(top, 0)
    sx1, sy1 = min(left + side, width), min(top + side, height)
    if sx1 > sx0 and sy1 > sy0:
        out[sy0 - top:sy1 - top, sx0 - left:sx1 - left] = frame[sy0:sy1, sx0:sx1]
    return resize_square(out, size)


def resize_square(image: np.ndarray, size: int) -> np.ndarray:
    """uint8 ``[H, W, 3]`` -> uint8 ``[size, size, 3]``, bilinear with antialiasing."""
    if image.shape[:2] == (size, size):
        return image
    t = torch.from_numpy(np.ascontiguousarray(image)).permute(2, 0, 1)[None]  # [1, 3, H, W] uint8
    t = F.interpolate(t.contiguous(memory_format=torch.channels_last), size=(size, size), mode="bilinear",
                      align_corners=False, antialias=True)
    return t[0].permute(1, 2, 0).contiguous().numpy()
