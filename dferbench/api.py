"""The Python API, shared by the CLI and by users' scripts.

    >>> from dferbench import api
    >>> results = api.run("zeroshot-clip", "synthetic", folds=[1], **{"train.batch_size": 8})
    >>> api.leaderboard("results", "leaderboards")
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable

from dferbench import runner
from dferbench.errors import DferbenchError


def _as_overrides(overrides: dict[str, Any]) -> list[str]:
    import json

    out = []
    for key, value in overrides.items():
        dotted = key.replace("__", ".")
        out.append(f"{dotted}={json.dumps(value)}")
    return out


def models_for(dataset: str) -> list[str]:
    """Every registered model that can run on ``dataset`` (it has a preset for it or a default)."""
    from dferbench import plugins

    names = []
    for name, reg in plugins.models().items():
        presets = reg.extra.get("presets") or {}
        if not presets or dataset in presets or "default" in presets:
            names.append(name)
    return names


def run(model: str, dataset: str, *, config: str | Path | None = None, overrides: list[str] | tuple[str, ...] = (),
        folds: list[int] | None = None, seeds: list[int] | None = None, output: str | Path = "results",
        device: str | None = None, progress: bool | None = None, skip_existing: bool = True,
        echo: Callable[[str], None] = print, **settings: Any) -> list[dict[str, Any]]:
    """Run ``model`` (or ``"all"``) on ``dataset`` under its protocol; return one result per unit.

    ``settings`` are overrides as keywords, ``"section.key"`` or ``section__key``:
    ``run("dferclip", "synthetic", train__epochs=2)``. Everything is validated before
    any unit starts; finished units are skipped on a rerun with the same config.
    """
    names = models_for(dataset) if model == "all" else [model]
    all_overrides = list(overrides) + _as_overrides(settings)
    plans = [runner.plan(name, dataset, config_file=config, overrides=all_overrides, folds=folds, seeds=seeds,
                         device=device) for name in names]
    results = []
    for p in plans:
        results += runner.run_plan(p, output=output, echo=echo, progress=progress, skip_existing=skip_existing)
    return results


def leaderboard(results: str | Path = "results", out: str | Path = "leaderboards", datasets: list[str] | None = None,
                *, check: bool = False, images: bool = True) -> list[str]:
    """Write ``out/<dataset>.md`` from result files; with ``check``, return the stale ones."""
    from dferbench import leaderboard as lb

    if not Path(results).is_dir():
        raise DferbenchError(f"results directory {results} does not exist: run `dferbench run` first")
    return lb.build(Path(results), Path(out), datasets, check=check, images=images)
