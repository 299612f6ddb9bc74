"""Running a face detector over the frames of a video, a few frames a second.

A face detector is any object with ``detect(frames uint8 [N, H, W, 3]) -> list[list[Box]]``
(one list of boxes per frame, in that frame's pixels, each with a confidence); the
built-in ones live in the ``faces`` plugin (Haar cascade, MTCNN, ``none``). One whose
``whole_frame`` attribute is true declares every frame to be a face crop already: no
detection runs and the frames reach the model uncropped.

Detection runs on frames sampled :data:`DETECT_FPS` times a second (tracks interpolate
between them), shrunk so that their longer side is at most :data:`DETECT_MAX_SIDE` pixels: detection
time grows with the pixel count, the boxes are scaled back to the full frame, and the
crops are cut from the full-resolution frames.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

import numpy as np
import torch
import torch.nn.functional as F

from dferbench.predict.tracking import Box
from dferbench.predict.video import VideoSource

DETECT_FPS = 5.0
DETECT_MAX_SIDE = 640
_CHUNK = 32  # frames decoded and detected at a time


@runtime_checkable
class FaceDetector(Protocol):
    """What a face detector plugin builds: ``detect(frames)`` finds the faces of each frame."""

    def detect(self, frames: np.ndarray) -> list[list[Box]]:
        """uint8 RGB ``[N, H, W, 3]`` -> the face boxes found in each frame."""
        ...


@dataclass
class Detections:
    """The boxes found in the sampled frames ``frames`` (indices into the video)."""

    frames: np.ndarray
    boxes: list[list[Box]]
    seconds: float  # detector time, decoding and resizing excluded

    @property
    def ms_per_frame(self) -> float:
        return 1000.0 * self.seconds / max(len(self.frames), 1)

    @property
    def found(self) -> int:
        """Sampled frames with at least one face."""
        return sum(1 for b in self.boxes if b)


def sampled_frames(timestamps: np.ndarray, rate: float) -> np.ndarray:
    """Indices of the frames nearest to every ``1 / rate`` seconds, the last frame included."""
    targets = np.arange(0.0, float(timestamps[-1]) + 1e-9, 1.0 / rate)
    indices = np.clip(np.searchsorted(timestamps, targets - 1e-9), 0, len(timestamps) - 1)
    return np.unique(np.append(indices, len(timestamps) - 1))


def shrink(frames: np.ndarray, max_side: int) -> tuple[np.ndarray, float]:
    """``frames`` with the longer side at most ``max_side`` and the factor applied."""
    h, w = frames.shape[1:3]
    factor = min(1.0, max_side / max(h, w))
    if factor >= 1.0:
        return frames, 1.0
    size = (max(1, round(h * factor)), max(1, round(w * factor)))
    t = torch.from_numpy(np.ascontiguousarray(frames)).permute(0, 3, 1, 2)
    t = F.interpolate(t.contiguous(memory_format=torch.channels_last), size=size, mode="bilinear",
                      align_corners=False, antialias=True)
    return t.permute(0, 2, 3, 1).contiguous().numpy(), factor


def detect_faces(source: VideoSource, detector: FaceDetector, *, rate: float = DETECT_FPS,
                 max_side: int = DETECT_MAX_SIDE) -> Detections:
    """Run ``detector`` on the frames of ``source`` sampled ``rate`` times a second."""
    frames = sampled_frames(source.timestamps, rate)
    boxes: list[list[Box]] = []
    seconds = 0.0
    for start in range(0, len(frames), _CHUNK):
        pixels, factor = shrink(source.read(frames[start:start + _CHUNK]), max_side)
        tic = time.perf_counter()
        found = detector.detect(pixels)
        seconds += time.perf_counter() - tic
        if len(found) != len(pixels):
            raise ValueError(f"the face detector returned {len(found)} box lists for {len(pixels)} frames")
        boxes.extend([b.scaled(1.0 / factor) for b in frame_boxes] for frame_boxes in found)
    return Detections(frames, boxes, seconds)
