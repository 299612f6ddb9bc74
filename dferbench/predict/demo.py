"""Videos made from a still portrait, for trying ``predict`` and testing it offline.

scikit-image's wheel ships ``skimage.data.astronaut()``, a public-domain NASA portrait
(Eileen Collins); :func:`pan_zoom` turns any such still into a camera move (a pan
across and a zoom in, :func:`camera_path`), :func:`write_mp4` writes frames with PyAV.
"""

from __future__ import annotations

import os
from fractions import Fraction
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F


def camera_path(height: int, width: int, n_frames: int, *, focus: tuple[float, float] = (0.5, 0.5),
                start: tuple[float, float] = (0.5, 0.4), views: tuple[float, float] = (0.75, 0.45),
                sway: float = 0.08) -> list[tuple[int, int, int]]:
    """The square views ``(x0, y0, side)`` of a camera move over a ``height x width`` image.

    The view shrinks from ``views[0]`` to ``views[1]`` of the image's shorter side (a zoom
    in) while its centre glides from ``start`` to ``focus`` (x, y as fractions of the
    width and height) and sways sideways by ``sway`` of the width along one sine period.
    """
    path = []
    for i in range(n_frames):
        a = i / max(n_frames - 1, 1)
        side = int(round(min(height, width) * (views[0] + (views[1] - views[0]) * a)))
        cx = width * (start[0] + (focus[0] - start[0]) * a + sway * np.sin(2 * np.pi * a))
        cy = height * (start[1] + (focus[1] - start[1]) * a)
        x0 = int(np.clip(round(cx - side / 2), 0, width - side))
        y0 = int(np.clip(round(cy - side / 2), 0, height - side))
        path.append((x0, y0, side))
    return path


def pan_zoom(image: np.ndarray, n_frames: int = 48, size: int = 160, **camera: Any) -> np.ndarray:
    """The frames of :func:`camera_path` (its keyword arguments) over ``image`` (uint8
    ``[H, W, 3]``), each view resized to ``size`` -> uint8 ``[n_frames, size, size, 3]``:
    the face moves across the frame and grows."""
    h, w = image.shape[:2]
    t = torch.from_numpy(np.ascontiguousarray(image)).permute(2, 0, 1)[None]  # [1, 3, H, W]
    frames = []
    for x0, y0, side in camera_path(h, w, n_frames, **camera):
        view = t[:, :, y0:y0 + side, x0:x0 + side].contiguous(memory_format=torch.channels_last)
        view = F.interpolate(view, size=(size, size), mode="bilinear", align_corners=False, antialias=True)
        frames.append(view[0].permute(1, 2, 0).contiguous().numpy())
    return np.stack(frames)


def write_mp4(path: str | os.PathLike[str], frames: np.ndarray, fps: float = 12.0, *, crf: int = 18) -> None:
    """Write uint8 RGB ``[N, H, W, 3]`` frames (even H and W) as an H.264 MP4."""
    import av

    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx264", rate=Fraction(fps).limit_denominator(1001),
                                      options={"crf": str(crf)})
        stream.height, stream.width = frames.shape[1:3]
        stream.pix_fmt = "yuv420p"
        for frame in frames:
            for packet in stream.encode(av.VideoFrame.from_ndarray(np.ascontiguousarray(frame), format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)


ASTRONAUT_FACE = (0.44, 0.23)  # the face's centre in skimage.data.astronaut(), fractions of width and height


def astronaut_video(path: str | os.PathLike[str], n_frames: int = 48, size: int = 160, fps: float = 12.0) -> None:
    """A pan-and-zoom MP4 of scikit-image's astronaut portrait (needs scikit-image)."""
    try:
        from skimage import data
    except ImportError:
        from dferbench.errors import DferbenchError

        raise DferbenchError("the astronaut demo video needs scikit-image: pip install scikit-image") from None
    write_mp4(path, pan_zoom(data.astronaut(), n_frames, size, focus=ASTRONAUT_FACE), fps)
