"""OpenCV's Viola-Jones Haar cascade for frontal faces.

Settings: the cascade ``haarcascade_frontalface_alt2.xml`` that opencv-python-headless
4.x ships in ``cv2.data.haarcascades`` (the 5.0 wheels ship none, hence ``<5``); each
frame turned grey and histogram-equalised (as OpenCV's face-detection sample does);
``detectMultiScale3`` with scale step 1.1, 5 neighbours, faces at least 5% of the
frame's shorter side (at least 20 pixels). The confidence is the cascade's level weight
for the box (unbounded; higher is surer).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from dferbench import Box, DferbenchError

CASCADE = "haarcascade_frontalface_alt2.xml"
INSTALL = "pip install 'opencv-python-headless>=4.8,<5'"


class HaarDetector:
    name = "haar"

    def __init__(self, device: str = "cpu", *, scale_factor: float = 1.1, min_neighbors: int = 5,
                 min_size: float = 0.05) -> None:
        del device  # OpenCV's cascade runs on the CPU
        try:
            import cv2
        except ImportError:
            raise DferbenchError(f"face detector 'haar' needs OpenCV: {INSTALL}") from None
        folder = getattr(getattr(cv2, "data", None), "haarcascades", None)
        path = Path(folder or "") / CASCADE
        if not folder or not path.is_file():
            raise DferbenchError(f"face detector 'haar': OpenCV {cv2.__version__} ships no {CASCADE}; {INSTALL}")
        self._cv2 = cv2
        self.cascade = cv2.CascadeClassifier(str(path))
        if self.cascade.empty():
            raise DferbenchError(f"face detector 'haar': OpenCV could not load {path}; reinstall it: {INSTALL}")
        self.scale_factor, self.min_neighbors, self.min_size = scale_factor, min_neighbors, min_size

    def detect(self, frames: np.ndarray) -> list[list[Box]]:
        cv2 = self._cv2
        out = []
        for frame in frames:
            grey = cv2.equalizeHist(cv2.cvtColor(np.ascontiguousarray(frame), cv2.COLOR_RGB2GRAY))
            side = max(20, int(self.min_size * min(grey.shape)))
            rects, _, weights = self.cascade.detectMultiScale3(
                grey, scaleFactor=self.scale_factor, minNeighbors=self.min_neighbors, minSize=(side, side),
                outputRejectLevels=True)
            out.append([Box(float(x), float(y), float(x + w), float(y + h), float(s))
                        for (x, y, w, h), s in zip(np.reshape(rects, (-1, 4)), np.ravel(weights))])
        return out
