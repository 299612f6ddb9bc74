"""The ``none`` face detector: the frames are face crops already (dataset clips)."""

from __future__ import annotations

import numpy as np

from dferbench import Box


class WholeFrame:
    """Every frame is one face filling the frame. ``whole_frame`` tells the pipeline to
    skip detection and cropping: frames reach the model as evaluation reads a clip."""

    name = "none"
    whole_frame = True

    def __init__(self, device: str = "cpu") -> None:
        del device  # nothing runs

    def detect(self, frames: np.ndarray) -> list[list[Box]]:
        h, w = frames.shape[1:3]
        return [[Box(0.0, 0.0, float(w), float(h), 1.0)] for _ in range(len(frames))]
