"""Running units: build the effective config, then train and evaluate each
(model, dataset, fold, seed), skipping units whose result already exists."""

from __future__ import annotations

import copy
import json
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable, Mapping

from dferbench.run import config as cfg
from dferbench.plugin import manager as plugins
from dferbench.errors import DferbenchError
from dferbench.models.weights import require_model_weights
from dferbench.run.protocols import Standard
from dferbench.run.results import SCHEMA_VERSION, UnitKey, git_commit, load_result, predictions_csv, save_unit, versions


@dataclass
class RunPlan:
    """A model on a dataset with its validated config, ready to run unit by unit."""

    model: plugins.Registered
    dataset_name: str
    config: cfg.Config
    preset: cfg.Config
    run_name: str
    protocol: Standard = field(default_factory=Standard)

    @property
    def hash(self) -> str:
        return self.protocol.hash(cfg.config_hash(self.config))


def preset_name(model: plugins.Registered, dataset: plugins.Registered) -> str | None:
    """Which of ``model``'s presets a run on ``dataset`` starts from: the dataset's own, else
    that of the dataset it registered as ``presets_like`` (a variant of a benchmark takes its
    settings), else ``"default"``; None when the model has none of them."""
    presets = model.extra.get("presets") or {}
    for name in (dataset.name, dataset.extra.get("presets_like"), "default"):
        if name in presets:
            return name
    return None


def _preset_layer(model: plugins.Registered, dataset: plugins.Registered) -> Mapping[str, Any]:
    presets = model.extra.get("presets") or {}
    preset = presets.get(preset_name(model, dataset), {})
    if isinstance(preset, (str, Path)):
        return cfg.read_toml(preset)
    return preset


def defaults_for(model: plugins.Registered, dataset: plugins.Registered) -> cfg.Config:
    base = copy.deepcopy(cfg.CORE_DEFAULTS)
    base["data"].update(dataset.options)
    base["model"].update(model.options)
    return base


def plan(model_name: str, dataset_name: str, *, config_file: str | Path | None = None,
         overrides: list[str] | tuple[str, ...] = (), folds: list[int] | None = None,
         seeds: list[int] | None = None, device: str | None = None, weights: bool = True,
         preset_dataset: str | None = None) -> RunPlan:
    """Validate names and settings (and, with ``weights``, that the CLIP weights are here or
    downloadable); raise :class:`DferbenchError` before any work.

    ``preset_dataset``: take the model's preset for that dataset instead of
    ``dataset_name``'s (a model trained on one dataset and tested on another)."""
    model = plugins.get("model", model_name)
    dataset = plugins.get("dataset", dataset_name)
    source = plugins.get("dataset", preset_dataset) if preset_dataset else dataset
    preset = cfg.merge(defaults_for(model, dataset), _preset_layer(model, source),
                       f"preset of model {model_name!r} for {source.name!r}")
    config = preset
    if config_file:
        config = cfg.merge(config, cfg.read_toml(config_file), str(config_file))
    config = cfg.apply_overrides(config, list(overrides))
    if folds:
        config["protocol"]["folds"] = list(folds)
    if seeds:
        config["protocol"]["seeds"] = list(seeds)
    if device:
        config["train"]["device"] = device
    cfg.validate(config)
    if weights:  # before any dataset is scanned: missing CLIP weights stop the run in seconds
        require_model_weights(model, config["model"])
    variant = cfg.variant_label(config, preset)
    run_name = f"{model_name}[{variant}]" if variant else model_name
    return RunPlan(model, dataset_name, config, preset, run_name)


def text_lookup(name: str, classes: list[str]) -> list[list[str]]:
    """The sentences of text set ``name`` for each class, checked. ``file:PATH`` reads a
    descriptor file written by ``dferbench describe``."""
    if name.startswith("file:"):
        table = cfg.read_toml(name[5:]).get("descriptors", {})
        missing = [c for c in classes if c not in table]
        if missing:
            raise DferbenchError(f"descriptor file {name[5:]} has no sentence for {missing}")
        return [[table[c]] for c in classes]
    texts = plugins.get("text set", name).target(list(classes))
    if len(texts) != len(classes) or not all(isinstance(t, list) and t for t in texts):
        raise DferbenchError(f"text set {name!r} must return a non-empty list of sentences for each of {classes}")
    return texts


class FixedNetwork:
    """A trained network evaluated as it is (``dferbench evaluate``)."""

    def __init__(self, ctx: Any, network: Any):
        self.ctx, self.network = ctx, network.to(ctx.device)

    def fit(self, train: Any, monitor: Any) -> dict[str, Any]:
        from dferbench.run.engine import effective_precision

        return {"precision": effective_precision(self.ctx.device, self.ctx.train["precision"])}

    def predict(self, clips: Any) -> Any:
        from dferbench.run.engine import predict_module

        return predict_module(self.network, clips, batch_size=self.ctx.train["eval_batch_size"],
                              device=self.ctx.device, precision=self.ctx.train["precision"],
                              enabled_progress=self.ctx.progress)


def load_dataset(name: str, data: Mapping[str, Any], datasets: dict[str, Any]) -> Any:
    """Dataset ``name`` built from the ``[data]`` section ``data``, once per section:
    ``datasets`` caches it for the plans of one call."""
    key = json.dumps([name, data], sort_keys=True)
    if key not in datasets:
        datasets[key] = plugins.get("dataset", name).target(dict(data))
    return datasets[key]


def _training_files(result: Path, train: Mapping[str, Any]) -> dict[str, Any]:
    """Where the training of the unit whose result is ``result`` keeps its files (the
    :class:`~dferbench.plugin.method.Monitor` fields)."""
    return {"history_path": result.with_suffix(".history.jsonl"),
            "state_path": result.with_suffix(".state.pt") if train["save_state"] else None,
            "tensorboard_dir": result.with_suffix(".tensorboard") if train["tensorboard"] else None,
            "keep_state": train["keep_state"]}


def run_plan(run: RunPlan, *, output: str | Path = "results", echo: Callable[[str], None] = print,
             progress: bool | None = None, skip_existing: bool = True,
             fixed_network: tuple[Any, list[str]] | None = None,
             datasets: dict[str, Any] | None = None) -> list[dict[str, Any]]:
    """Run every (fold, seed) unit of ``run``; return the result dicts (new and resumed).

    ``fixed_network`` = (trained network, its class texts) evaluates that network instead
    of building and training the model (selection policy ``checkpoint``). ``datasets``, a
    dict shared by the plans of one call, keeps each dataset built once per ``[data]``
    section instead of re-scanning the disk for every model of a suite."""
    from dferbench.run import distributed as dist
    from dferbench.data.loader import ClipSet, resolve_pipeline, resolve_workers
    from dferbench.run.engine import resolve_device, seed_everything
    from dferbench.plugin.method import ModelContext, Monitor
    from dferbench.report.metrics import compute_metrics
    from dferbench.run.progress import progress_enabled

    progress = progress_enabled() if progress is None else progress
    config = run.config
    dataset_reg = plugins.get("dataset", run.dataset_name)
    datasets = {} if datasets is None else datasets
    dataset = load_dataset(run.dataset_name, config["data"], datasets)
    folds = config["protocol"]["folds"] or dataset.folds
    missing = [f for f in folds if f not in dataset.splits]
    if missing:
        raise DferbenchError(f"dataset {run.dataset_name!r} has no fold {missing[0]}; valid folds: {dataset.folds}")
    device = dist.init_from_env(resolve_device(config["train"]["device"]))  # torchrun: one GPU per rank
    main_process = dist.is_main_process()
    if not main_process:  # only rank 0 of a torchrun job talks and writes
        echo, progress = (lambda _message: None), False
    skipped = dataset.notes.get("skipped_bad_clips", 0)
    if skipped:
        echo(f"note  {run.dataset_name}: {skipped} clips skipped as bad (data.skip_bad_clips); "
             "`dferbench check-data` lists them")
    data = config["data"]
    augmentation = dataset.augmentation if data["augmentation"] == "auto" else data["augmentation"]
    selection = "checkpoint" if fixed_network else config["protocol"]["selection"]
    protocol = run.protocol
    protocol.prepare(dataset, folds, datasets, echo)
    if fixed_network and len(fixed_network[1]) != len(protocol.model_classes):
        raise DferbenchError(f"the checkpoint scores {len(fixed_network[1])} classes but {run.dataset_name!r} has "
                             f"{len(protocol.model_classes)} ({', '.join(protocol.model_classes)})")
    results = []
    for fold in folds:
        for seed in config["protocol"]["seeds"]:
            key = UnitKey(run.run_name, run.dataset_name, fold, seed, selection, protocol.protocol_dir)
            path = key.path(Path(output))
            existing = load_result(path) if skip_existing and main_process else None
            existing = dist.broadcast_object(existing)  # every rank skips the same units
            if existing and existing.get("config_hash") == run.hash:
                echo(f"skip  {run.run_name} on {run.dataset_name} fold {fold} seed {seed}: result exists ({path})")
                results.append(existing)
                continue
            echo(f"run   {run.run_name} on {run.dataset_name} fold {fold} seed {seed}")
            start = time.perf_counter()
            seed_everything(seed)

            def clipset(records, *, name=None, reader=None, augmentation=augmentation, pipeline=None) -> ClipSet:
                return ClipSet(name or run.dataset_name, records, reader or dataset.reader,
                               num_frames=data["num_frames"], image_size=data["image_size"],
                               normalize=data["normalize"], augmentation=augmentation, workers=data["workers"],
                               pipeline=pipeline or data["pipeline"], prefetch=data["prefetch"])

            train, test = protocol.clipsets(dataset, fold, clipset)
            if len(test) == 0:
                raise DferbenchError(f"{run.dataset_name}: the test split of fold {fold} has no clips"
                                     + (f" ({skipped} of the dataset skipped as bad)" if skipped else "")
                                     + "; nothing to score")
            workdir = Path(output) / ".work" / run.dataset_name
            ctx = ModelContext(model=run.model.name, dataset=run.dataset_name, fold=fold,
                               classes=list(protocol.model_classes),
                               config=copy.deepcopy(config), device=device, seed=seed, workdir=workdir,
                               texts=text_lookup, progress=progress)
            method = FixedNetwork(ctx, fixed_network[0]) if fixed_network else run.model.target(ctx)
            monitor = Monitor(selection, test_clips=test if selection == "best_on_test" else None, progress=progress,
                              unit=f"{run.run_name} on {run.dataset_name} fold {fold} seed {seed}", echo=echo,
                              config_hash=run.hash, **_training_files(path, config["train"]))
            fit_info = method.fit(train, monitor) or {}
            logits = protocol.scores(method.predict(test))
            metrics = compute_metrics(test.labels, logits)
            result = {
                "schema": SCHEMA_VERSION,
                "run_name": run.run_name,
                "model": run.model.name,
                "variant": cfg.variant_label(config, run.preset),
                "dataset": run.dataset_name,
                "fold": fold,
                "seed": seed,
                "uar": round(metrics["uar"], 4),
                "war": round(metrics["war"], 4),
                "per_class_recall": metrics["per_class_recall"],
                "confusion": metrics["confusion"],
                "classes": list(protocol.classes),
                "n_train": len(train),
                "n_test": len(test),
                "selection": selection,
                "num_frames": data["num_frames"],
                "image_size": data["image_size"],
                "normalize": data["normalize"],
                "augmentation": train.augmentation,
                "family": run.model.extra.get("family", ""),
                "temporal": bool(run.model.extra.get("temporal", False)) and config["model"].get("temporal_depth", 1) != 0,
                "config_hash": run.hash,
                "config": config,
                "fit": fit_info,
                "history": monitor.history,
                "dataset_notes": dict(dataset.notes),
                "plugins": {"model": run.model.plugin, "dataset": dataset_reg.plugin,
                            "versions": dict(plugins.plugin_versions)},
                "versions": versions(),
                "git_commit": git_commit(),
                "device": device,
                "precision": fit_info.get("precision", "fp32"),  # what the method computed in
                "data_pipeline": resolve_pipeline(data["pipeline"], device, resolve_workers(data["workers"], device)),
                "world_size": dist.rank_world()[1],
                "wall_seconds": round(time.perf_counter() - start, 2),
                "finished_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
                **protocol.record(),
            }
            if main_process:
                preds = predictions_csv([r.clip_id for r in test.records], test.labels, logits, list(protocol.classes))
                save_unit(path, result, preds)
                monitor.finished()
            echo(f"done  {run.run_name} fold {fold} seed {seed}: UAR {result['uar']:.2f}  WAR {result['war']:.2f}"
                 f"  ({result['wall_seconds']:.1f}s)")
            results.append(result)
    return results
