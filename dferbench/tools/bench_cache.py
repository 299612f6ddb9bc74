"""Feature-cache benchmark: frozen-encoder runs over several text sets and folds.

A method with a frozen image encoder sees the same frames for every prompt variant,
fold and seed. This runs one such method (zero-shot CLIP by default) with ``len(text_sets)``
text sets over ``folds``, three times, end to end through :func:`dferbench.api.run`:

* ``no cache``: ``model.feature_cache=false``, every unit encodes its test clips;
* ``cold cache``: an empty cache, the first text set encodes each fold, the others read it;
* ``warm cache``: the same units again (results not skipped), every feature read from disk.

Each row reports the wall time, the image-encoder batches run
(:data:`dferbench.models.features.encoder_calls`) and the speed-up over ``no cache``.
Run ``dferbench bench cache`` to print the table.
"""

from __future__ import annotations

import shutil
import tempfile
import time
from pathlib import Path
from typing import Any, Sequence

DEFAULT_TEXT_SETS = ("class-names", "expression-of", "photo-of", "face-templates")


def benchmark_cache(*, model: str = "zeroshot-clip", dataset: str = "synthetic",
                    text_sets: Sequence[str] = DEFAULT_TEXT_SETS, folds: Sequence[int] = (1, 2),
                    overrides: Sequence[str] = (), workdir: str | Path | None = None) -> list[dict[str, Any]]:
    """Time ``len(text_sets) x len(folds)`` units without, with a cold and with a warm cache.

    ``overrides`` are ``--set`` strings applied to every unit (e.g. a smaller dataset);
    ``workdir`` holds the throwaway results and cache (default: a temporary folder,
    removed afterwards). Returns one dict per mode: ``mode``, ``units``,
    ``encoder_calls``, ``seconds``, ``speedup``.
    """
    from dferbench import api
    from dferbench.models import features

    root = Path(tempfile.mkdtemp(prefix="dferbench-bench-cache-")) if workdir is None else Path(workdir)
    root.mkdir(parents=True, exist_ok=True)

    def sweep(output: Path, cache: bool) -> tuple[float, int]:
        calls, start = features.encoder_calls, time.perf_counter()
        for text in text_sets:
            api.run(model, dataset, folds=list(folds), output=output, skip_existing=False, progress=False,
                    echo=lambda _message: None,
                    overrides=[*overrides, f"model.text={text}", f"model.feature_cache={str(cache).lower()}"])
        return time.perf_counter() - start, features.encoder_calls - calls

    try:
        timings = {
            "no cache": sweep(root / "no-cache", cache=False),
            "cold cache": sweep(root / "cache", cache=True),
            "warm cache": sweep(root / "cache", cache=True),  # same folder: the cache is there now
        }
    finally:
        if workdir is None:
            shutil.rmtree(root, ignore_errors=True)
    baseline = timings["no cache"][0]
    units = len(text_sets) * len(folds)
    return [{"mode": mode, "units": units, "encoder_calls": calls, "seconds": round(seconds, 2),
             "speedup": round(baseline / seconds, 2)} for mode, (seconds, calls) in timings.items()]
