"""Robustness to test-time corruptions: each unit trains once and is tested clean and
under every (corruption, severity) cell of :mod:`dferbench.data.corruptions`.

The protocol, per (fold, seed) unit:

* the model trains as in a plain run (its preset, the clean train split);
* its test split is scored clean (corruption ``clean``, severity 0) and then through
  :class:`~dferbench.data.corruptions.CorruptedReader` for each cell. The corruption's
  random draws come from a fixed corruption seed (default 0), not the unit's seed: every
  model and every seed is tested on the same corrupted clips, so rows are paired;
* test clips always go through the ``cpu`` data pipeline, the one that reads frames
  through the dataset's reader (the ``gpu`` pipeline decodes JPEG folders itself and the
  ``reference`` pipeline opens frames with PIL: both would bypass the corruption). On a
  CPU that is what ``auto`` means, so the clean cell is a plain run's result;
* each cell is an ordinary result record (``protocol = "robustness"``, ``corruption``,
  ``severity``, ``corruption_seed``, ``corruption_level``) at
  ``OUTPUT/<dataset>/<run>/robustness/<corruption>-<severity>/foldK-seedS.json``, with its
  predictions next to it. Its config hash adds the cell, the corruption's level at that
  severity and :data:`~dferbench.data.corruptions.VERSION`: after a change to the table
  the changed cells run again and never resume stale results.

Reading once: the clean test frames of a unit are kept in memory (up to
:data:`FRAME_CACHE_BYTES`) and each spatial corruption starts from them, so the dataset's
reader decodes (or the synthetic renderer draws) them once per unit, not once per cell.

Training once: the trained model stays in memory across the cells of its unit and is
dropped before the next unit (one model in memory at a time). A rerun skips finished
cells like finished units; when cells of a unit remain (a killed run), the unit's model
trains again first. On a CPU training is deterministic, so the retrained model is the same;
on a GPU nondeterministic kernels can make it differ slightly from the one that scored the
earlier cells (``--rerun`` scores every cell with one model).
"""

from __future__ import annotations

import copy
import dataclasses
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np

from dferbench.data import corruptions as corr
from dferbench.errors import DferbenchError, UnitsFailed
from dferbench.plugin.specs import ModelSpec
from dferbench.run import outputs, runner
from dferbench.run.protocols import MakeClipSet, Standard
from dferbench.run.results import protocol_folder


FRAME_CACHE_BYTES = 2 * 2**30
"""The most decoded test frames kept for the cells of one unit (a DFEW test fold at 224 px
and 16 frames is about 5.6 GB: the first 2 GiB of its frames are then decoded once)."""


class FrameCache:
    """A frame reader that keeps, per clip, the frames of the first call ``reader`` answered
    for it (up to ``max_bytes`` in all) and answers the same call again from memory. The
    clean cell reads the test-time frames first; every spatial corruption then reads the
    same ones, temporal corruptions other ones (read through ``reader``)."""

    def __init__(self, reader: Any, max_bytes: int = FRAME_CACHE_BYTES):
        self.reader, self.max_bytes = reader, max_bytes
        self.clear()

    def clear(self) -> None:
        self.frames: dict[str, tuple[tuple[int, ...], np.ndarray]] = {}
        self.bytes = 0

    def __call__(self, record: Any, indices: Sequence[int]) -> np.ndarray:
        key = tuple(int(i) for i in indices)
        kept = self.frames.get(record.clip_id)
        if kept is not None and kept[0] == key:
            return kept[1].copy()
        frames = np.asarray(self.reader(record, indices))
        if kept is None and self.bytes + frames.nbytes <= self.max_bytes:
            self.frames[record.clip_id] = (key, frames.copy())
            self.bytes += frames.nbytes
        return frames


class CorruptedTest(Standard):
    """The standard protocol with the test clips read through one corruption cell
    (``reader``: what the corruption reads from, default the dataset's reader)."""

    name = "robustness"

    def __init__(self, corruption: str, severity: int, corruption_seed: int = 0, reader: Any = None):
        corr.CorruptedReader(lambda record, indices: None, corruption, severity)  # checks both
        self.corruption, self.severity, self.corruption_seed = corruption, severity, corruption_seed
        self.reader = reader
        self.protocol_dir = protocol_folder(self.record())

    @property
    def level(self) -> Any:
        """The corruption's parameter at this severity (None when clean)."""
        return corr.CORRUPTIONS[self.corruption].levels[self.severity - 1] if self.severity else None

    def hash_parts(self) -> dict[str, Any]:
        parts: dict[str, Any] = {"corruption": self.corruption, "severity": self.severity}
        if self.severity:
            parts.update(level=self.level, corruption_seed=self.corruption_seed, corruptions_version=corr.VERSION)
        return parts

    def record(self) -> dict[str, Any]:
        return {"protocol": self.name, "corruption": self.corruption, "severity": self.severity,
                "corruption_seed": self.corruption_seed, "corruption_level": self.level,
                "corruptions_version": corr.VERSION}

    def clipsets(self, dataset: Any, fold: int, make: MakeClipSet) -> tuple[Any, Any]:
        reader = corr.CorruptedReader(self.reader or dataset.reader, self.corruption, self.severity,
                                      self.corruption_seed)
        return make(dataset.split(fold, "train")), make(dataset.split(fold, "test"), reader=reader, pipeline="cpu")


class _TrainedOnce:
    """A model registration whose method trains once per unit: the first cell of a unit
    that runs builds and fits it, the unit's later cells reuse it (and its fit facts and
    training history). A cell whose training failed leaves nothing: the next one trains anew."""

    def __init__(self, model: ModelSpec):
        self.model = model
        self.registered = dataclasses.replace(model, factory=self._factory)
        self.forget()

    def forget(self) -> None:
        self.unit: tuple[int, int] | None = None
        self.method: Any = None
        self.fit_info: dict[str, Any] | None = None
        self.history: list[dict[str, Any]] = []

    def _factory(self, ctx: Any) -> _Cell:
        if (ctx.fold, ctx.seed) != self.unit or self.fit_info is None:  # a new unit, or its training failed
            self.forget()
            self.unit, self.method = (ctx.fold, ctx.seed), self.model.build(ctx)
        return _Cell(self)


class _Cell:
    """The method one cell's run sees."""

    def __init__(self, owner: _TrainedOnce):
        self.owner = owner

    def fit(self, train: Any, monitor: Any) -> dict[str, Any]:
        owner = self.owner
        if owner.fit_info is None:
            owner.fit_info = owner.method.fit(train, monitor) or {}
            owner.history = list(monitor.history)
        else:
            monitor.history.extend(owner.history)
        return owner.fit_info

    def predict(self, clips: Any) -> Any:
        return self.owner.method.predict(clips)


def grid(corruptions: Sequence[str] | None = None, severities: Sequence[int] | None = None) -> list[tuple[str, int]]:
    """The cells of a robustness run: ``("clean", 0)`` first, then ``severities`` (default
    1-5) of each of ``corruptions`` (default: all, in table order)."""
    cells = corr.robustness_grid(corruptions)
    if severities is not None:
        bad = [s for s in severities if s not in corr.SEVERITIES]
        if bad or not severities:
            raise DferbenchError(f"severities must be some of {', '.join(map(str, corr.SEVERITIES))}, got "
                                 f"{list(severities)}")
        cells = [(c, s) for c, s in cells if s == 0 or s in severities]
    return cells


def plan(model: str, dataset: str, **plan_options: Any) -> runner.RunPlan:
    """The validated plan of ``model`` on ``dataset`` whose units the cells share (the keywords
    of :func:`dferbench.run.runner.plan`)."""
    base = runner.plan(model, dataset, **plan_options)
    if base.config["protocol"]["selection"] != "last_epoch":
        raise DferbenchError(f"robustness runs keep the last epoch's weights; protocol.selection = "
                             f"{base.config['protocol']['selection']!r} would choose them on the clean test split, "
                             "which the corrupted cells then score: drop the setting")
    return base


def run_robustness(base: runner.RunPlan, cells: Sequence[tuple[str, int]], *, corruption_seed: int = 0,
                   output: str | Path = "runs", progress: bool | None = None, skip_existing: bool = True,
                   fixed_network: tuple[Any, list[str]] | None = None,
                   echo: Callable[[str], None] = print) -> list[dict[str, Any]]:
    """Train ``base``'s model once per (fold, seed) unit and score its test split under each
    of ``cells`` (see :func:`grid`); return the cells' results (new and resumed), unit by
    unit in the order of ``cells``. ``fixed_network`` = (trained network, its class texts)
    scores that network instead (a checkpoint: :func:`dferbench.run.trained.checkpoint_plan`)."""
    datasets: dict[str, Any] = {}
    data = runner.load_dataset(base.dataset_name, base.config["data"], datasets)
    unit_folds = base.config["protocol"]["folds"] or data.folds
    trained = _TrainedOnce(base.model)
    frames = FrameCache(data.reader)
    echo(f"robustness of {base.run_name} on {base.dataset_name}: {len(cells)} cells per unit, "
         f"corruption seed {corruption_seed}")
    results: list[dict[str, Any]] = []
    failed: list[str] = []
    for fold in unit_folds:
        for seed in base.config["protocol"]["seeds"]:
            for corruption, severity in cells:
                cell = copy.deepcopy(base.config)
                cell["protocol"].update(folds=[fold], seeds=[seed])
                unit = dataclasses.replace(base, model=trained.registered, config=cell,
                                           protocol=CorruptedTest(corruption, severity, corruption_seed, frames))
                tag = f"  [{corruption} {severity}]"
                try:
                    results += runner.run_plan(unit, output=output, echo=lambda m, tag=tag: echo(m + tag),
                                               progress=progress, skip_existing=skip_existing, datasets=datasets,
                                               fixed_network=fixed_network)
                except UnitsFailed as exc:  # recorded next to the cell's result; the other cells go on
                    results += exc.results
                    failed += [f"{f} [{corruption} {severity}]" for f in exc.failed]
            trained.forget()
        frames.clear()
    if failed:
        raise outputs.units_failed(results, failed)
    return results
