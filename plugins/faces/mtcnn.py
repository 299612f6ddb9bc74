"""MTCNN (Zhang et al. 2016) through facenet-pytorch, whose wheel ships the weights.

facenet-pytorch 2.6.0 pins torch < 2.3, so it cannot be a dependency or an extra of
dferbench: install it without its dependencies, plus the two it needs at import time
(:data:`INSTALL`). Under numpy 2 its ``detect`` returns object arrays (one entry per
frame, ``None`` where no face was found); they are unpacked here. Settings: facenet's
defaults (smallest face 20 pixels, stage thresholds 0.6/0.7/0.7, scale factor 0.709),
then boxes with a probability under 0.9 are dropped.
"""

from __future__ import annotations

import numpy as np

from dferbench import Box, DferbenchError

INSTALL = "pip install --no-deps facenet-pytorch==2.6.0 && pip install requests tqdm"
MIN_PROBABILITY = 0.9


def load_mtcnn_class():
    """facenet-pytorch's ``MTCNN`` class, or a one-line error saying how to install it."""
    try:
        from facenet_pytorch import MTCNN
    except ImportError as exc:
        raise DferbenchError(f"face detector 'mtcnn' needs facenet-pytorch ({exc}); install it with: {INSTALL} "
                             "(--no-deps: its torch<2.3 pin would replace your torch), "
                             "or use --face-detector haar") from None
    return MTCNN


class MTCNNDetector:
    name = "mtcnn"

    def __init__(self, device: str = "cpu", *, min_probability: float = MIN_PROBABILITY) -> None:
        self.mtcnn = load_mtcnn_class()(keep_all=True, device=device)
        self.min_probability = min_probability

    def detect(self, frames: np.ndarray) -> list[list[Box]]:
        if len(frames) == 0:
            return []
        boxes, probs = self.mtcnn.detect(np.ascontiguousarray(frames))
        out = []
        for frame_boxes, frame_probs in zip(boxes, probs):
            if frame_boxes is None:
                out.append([])
                continue
            xyxy = np.asarray(frame_boxes, dtype=np.float64).reshape(-1, 4)
            p = np.asarray(frame_probs, dtype=np.float64).reshape(-1)
            out.append([Box(*map(float, b), float(s)) for b, s in zip(xyxy, p) if s >= self.min_probability])
        return out
