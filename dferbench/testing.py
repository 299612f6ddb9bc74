"""Helpers for tests of dataset and model plugins: small frame folders and videos on disk.

The real datasets cannot be shipped, so loaders are tested on trees written with these:
small JPEG frame folders (smooth gradients that vary per clip and frame) and videos
written with PyAV, plus truncated files for the error paths.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Sequence

import numpy as np

def frame_image(clip_seed: int, index: int, size: int = 32) -> np.ndarray:
    """A deterministic uint8 RGB frame: a gradient shifted by the clip and frame index."""
    y, x = np.mgrid[0:size, 0:size].astype(np.float32) / max(size - 1, 1)
    phase = (clip_seed * 37 + index * 11) % 256
    r = (x * 200 + phase) % 256
    g = (y * 200 + 2 * phase) % 256
    b = ((x + y) * 100 + index * 7) % 256
    return np.stack([r, g, b], axis=-1).astype(np.uint8)


def write_frames(
    folder: str | os.PathLike[str], n: int, *, size: int = 32, seed: int = 0,
    names: Sequence[str] | None = None, quality: int = 90,
) -> list[Path]:
    """Write ``n`` JPEG frames ``00001.jpg``... (or ``names``) into ``folder``."""
    from PIL import Image

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    names = list(names) if names is not None else [f"{i + 1:05d}.jpg" for i in range(n)]
    paths = []
    for i, name in enumerate(names[:n]):
        path = folder / name
        image = Image.fromarray(frame_image(seed, i, size))
        if path.suffix.lower() == ".png":
            image.save(path)
        else:
            image.save(path, quality=quality)
        paths.append(path)
    return paths


def write_video(path: str | os.PathLike[str], n: int, *, size: int = 32, seed: int = 0,
                fps: int = 25, codec: str = "mpeg4", gop: int = 12) -> Path:
    """Write an ``n``-frame video (PyAV); frame i is ``frame_image(seed, i, size)``."""
    import av

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with av.open(str(path), mode="w") as container:
        stream = container.add_stream(codec, rate=fps)
        stream.width = stream.height = size
        stream.pix_fmt = "yuv420p"
        stream.gop_size = gop
        if codec == "mpeg4":
            stream.options = {"qscale": "2"}
        for i in range(n):
            frame = av.VideoFrame.from_ndarray(frame_image(seed, i, size), format="rgb24")
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return path


def truncate_file(path: str | os.PathLike[str], keep: float = 0.5) -> None:
    """Cut a file to a fraction of its size (a half-copied frame or video)."""
    path = Path(path)
    data = path.read_bytes()
    path.write_bytes(data[: max(1, int(len(data) * keep))])
