"""Helpers for tests of dataset and model plugins (public: ``from dferbench import testing``).

- :func:`registered_plugin` registers a plugin for the duration of a test, and
  :func:`run_unit` runs one (model, dataset, fold, seed) unit through the harness on tiny
  data, as ``dferbench run`` would; :func:`build_dataset` builds a registered dataset.
- The real datasets cannot be shipped, so loaders are tested on trees written with
  :func:`write_frames` (small JPEG frame folders: smooth gradients that vary per clip and
  frame) and :func:`write_video` (PyAV), plus :func:`truncate_file` for the error paths.
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path
from typing import Any, Iterator, Sequence

import numpy as np


@contextlib.contextmanager
def registered_plugin(plugin: Any, name: str | None = None) -> Iterator[str]:
    """Register ``plugin`` (a module or object with ``@dferbench.hookimpl`` functions) for the
    ``with`` block, under ``name`` (default ``undo-<module name>``); yields the name it is
    registered under. A plugin that is registered already (installed, and loaded through
    its entry point) is used as it is and stays registered::

        @pytest.fixture
        def plugin():
            with testing.registered_plugin(dferbench_mylab):
                yield
    """
    from dferbench.plugin.manager import load_plugins, pm

    load_plugins()
    if pm.is_registered(plugin):
        yield pm.get_name(plugin)
        return
    name = name or f"undo-{getattr(plugin, '__name__', type(plugin).__name__)}"
    pm.register(plugin, name=name)
    try:
        yield name
    finally:
        pm.unregister(name=name)


def build_dataset(name: str, **options: Any):
    """The registered dataset ``name`` built from its defaults (the core's ``[data]``
    settings and its own options) with ``options`` on top: a :class:`dferbench.DFERDataset`."""
    from dferbench.plugin import manager
    from dferbench.run.runner import dataset_defaults

    spec = manager.get("dataset", name)
    return spec.build({**dataset_defaults(spec)["data"], **options})


def run_unit(model: str, dataset: str, output: str | os.PathLike[str], *, overrides: Sequence[str] = (),
             fold: int = 1, seed: int = 1, device: str = "cpu") -> dict[str, Any]:
    """Run one unit of ``model`` on ``dataset`` (``fold``, ``seed``) through the harness, as
    ``dferbench run`` does, writing under ``output``; return its result (``uar``, ``war``,
    ``config``, ``fit``...). ``overrides`` are ``--set`` strings (``"data.clips=16"``)."""
    from dferbench import api

    results = api.run(model, dataset, folds=[fold], seeds=[seed], output=output, overrides=list(overrides),
                      device=device, skip_existing=False, echo=lambda message: None)
    return results[0]

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
