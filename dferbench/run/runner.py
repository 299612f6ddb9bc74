"""Running units: build the effective config, then train and evaluate each
(model, dataset, fold, seed), skipping units whose result already exists."""

from __future__ import annotations

import contextlib
import copy
import json
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable, Mapping

from dferbench.run import config as cfg
from dferbench.plugin import manager as plugins
from dferbench.errors import DferbenchError, Terminated, storage_error
from dferbench.models.weights import require_model_weights
from dferbench.plugin.boundary import PluginFailure, debug
from dferbench.plugin.specs import DatasetSpec, ModelSpec
from dferbench.run.protocols import Standard
from dferbench.run.outputs import check_output, check_writable, claim, one_line, record_failure, units_failed
from dferbench.run.results import SCHEMA_VERSION, UnitKey, git_commit, predictions_csv, save_unit, versions


@dataclass
class RunPlan:
    """A model on a dataset with its validated config, ready to run unit by unit."""

    model: ModelSpec
    dataset_name: str
    config: cfg.Config
    preset: cfg.Config
    run_name: str
    spec: cfg.Spec | None = None
    protocol: Standard = field(default_factory=Standard)

    @property
    def hash(self) -> str:
        return self.protocol.hash(cfg.config_hash(self.config, self.spec))


FALLBACK_IMAGE_SIZE = 224
"""``data.image_size`` for a model that does not say what it reads (no ``input_size``)."""


def _preset_layer(model: ModelSpec, dataset: str) -> Mapping[str, Any]:
    preset = model.presets.get(dataset, model.presets.get("default", {}))
    if isinstance(preset, (str, Path)):
        return cfg.read_toml(preset)
    return preset


def preset_name(model: ModelSpec, dataset: DatasetSpec) -> str | None:
    """Which of ``model``'s presets a run on ``dataset`` takes: the dataset's own, else that
    of the dataset it registered as ``presets_like`` (a variant of a benchmark takes its
    recipe), else ``"default"``; None when the model has none of them."""
    for name in (dataset.name, dataset.presets_like, "default"):
        if name and name in model.presets:
            return name
    return None


def _profile_layer(model: ModelSpec, dataset: DatasetSpec) -> dict[str, dict[str, Any]]:
    """The dataset's profile, less the model keys this model does not have."""
    model_keys = {k: v for k, v in dataset.profile.get("model", {}).items() if k in model.options}
    return {"data": dict(dataset.profile.get("data", {})), "model": model_keys}


def dataset_spec(dataset: DatasetSpec) -> cfg.Spec:
    """The options of a dataset's runs before a model is chosen: the core's and its own."""
    return cfg.extend(cfg.CORE_OPTIONS, "data", dataset.options, f"dataset {dataset.name!r} ({dataset.plugin})")


def dataset_defaults(dataset: DatasetSpec) -> cfg.Config:
    """The core defaults with the dataset's own options."""
    return cfg.defaults(dataset_spec(dataset))


def spec_for(model: ModelSpec, dataset: DatasetSpec) -> cfg.Spec:
    """The options of a model on a dataset: the core's and both plugins' own."""
    return cfg.extend(dataset_spec(dataset), "model", model.options, f"model {model.name!r} ({model.plugin})")


def defaults_for(model: ModelSpec, dataset: DatasetSpec) -> cfg.Config:
    return cfg.defaults(spec_for(model, dataset))


def preset_for(model: ModelSpec, dataset: DatasetSpec, spec: cfg.Spec | None = None) -> cfg.Config:
    """What a run of ``model`` on ``dataset`` starts from, ``data.image_size`` unresolved.

    Later wins: the core defaults and the plugins' option defaults; the model's
    ``default`` preset (when it has none for this dataset); the dataset's profile; the
    model's preset for this dataset, or for the one it takes presets like
    (:func:`preset_name`). Each layer is checked against ``spec`` (by default
    :func:`spec_for` the pair)."""
    spec = spec_for(model, dataset) if spec is None else spec
    config = cfg.defaults(spec)
    name = preset_name(model, dataset)
    own = name not in (None, "default")
    if not own:
        config = cfg.merge(config, _preset_layer(model, "default"), f"default preset of model {model.name!r}", spec)
    config = cfg.merge(config, _profile_layer(model, dataset), f"profile of dataset {dataset.name!r}", spec)
    if own:
        config = cfg.merge(config, _preset_layer(model, name), f"preset of model {model.name!r} for {name!r}", spec)
    return config


def resolve_image_size(config: cfg.Config, model: ModelSpec) -> cfg.Config:
    """``config`` with ``data.image_size`` set: ``0`` follows the model's input size (its
    CLIP's), or :data:`FALLBACK_IMAGE_SIZE`; a size the model cannot read is an error."""
    wanted = model.image_size(config["model"])
    size = config["data"]["image_size"]
    if size == 0:
        config["data"]["image_size"] = wanted or FALLBACK_IMAGE_SIZE
    elif wanted is not None and size != wanted:
        raise DferbenchError(f"data.image_size = {size}, but model {model.name!r} with these settings reads "
                             f"{wanted}x{wanted} images (clip_model {config['model'].get('clip_model', '?')!r}); "
                             "set data.image_size = 0 to follow the model")
    return config


def plan(model_name: str, dataset_name: str, *, config_file: str | Path | None = None,
         overrides: list[str] | tuple[str, ...] = (), folds: list[int] | None = None,
         seeds: list[int] | None = None, device: str | None = None, weights: bool = True,
         preset_dataset: str | None = None) -> RunPlan:
    """Validate names and settings (and, with ``weights``, that the CLIP weights are here or
    downloadable); raise :class:`DferbenchError` before any work.

    ``preset_dataset``: start from what a run on that dataset starts from (the model's
    preset for it and its profile, :func:`preset_for`) instead of ``dataset_name``'s (a
    model trained on one dataset and tested on another)."""
    model = plugins.get("model", model_name)
    dataset = plugins.get("dataset", dataset_name)
    source = plugins.get("dataset", preset_dataset) if preset_dataset else dataset
    spec = spec_for(model, dataset)
    preset = preset_for(model, source, spec)
    config = preset
    if config_file:
        config = cfg.merge(config, cfg.read_toml(config_file), str(config_file), spec)
    config = cfg.apply_overrides(config, list(overrides), spec)
    for option, section, key, value in (("--folds", "protocol", "folds", folds),
                                        ("--seeds", "protocol", "seeds", seeds), ("--device", "train", "device", device)):
        if value is not None:
            config = cfg.merge(config, {section: {key: value if isinstance(value, str) else list(value)}}, option, spec)
    cfg.validate(config, spec)
    if weights:  # before any dataset is scanned: missing CLIP weights stop the run in seconds
        require_model_weights(model, config["model"])
    config = resolve_image_size(config, model)
    preset = resolve_image_size(copy.deepcopy(preset), model)
    variant = cfg.variant_label(config, preset, spec)
    run_name = f"{model_name}[{variant}]" if variant else model_name
    return RunPlan(model, dataset_name, config, preset, run_name, spec)


def class_texts(name: str, classes: list[str]) -> list[list[str]]:
    """The sentences of text set ``name`` for each of ``classes``, checked: one non-empty
    list per class. ``file:PATH`` reads a descriptor file written by ``dferbench describe``."""
    if name.startswith("file:"):
        table = cfg.read_toml(name[5:]).get("descriptors", {})
        missing = [c for c in classes if c not in table]
        if missing:
            raise DferbenchError(f"descriptor file {name[5:]} has no sentence for {missing}")
        return [[table[c]] for c in classes]
    return plugins.get("text set", name).texts_for(list(classes))


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


def _training_files(result: Path, train: Mapping[str, Any]) -> dict[str, Any]:
    """Where the training of the unit whose result is ``result`` keeps its files (the
    :class:`~dferbench.plugin.method.Monitor` fields)."""
    return {"history_path": result.with_suffix(".history.jsonl"),
            "state_path": result.with_suffix(".state.pt") if train["save_state"] else None,
            "tensorboard_dir": result.with_suffix(".tensorboard") if train["tensorboard"] else None,
            "keep_state": train["keep_state"]}


def load_dataset(name: str, data: Mapping[str, Any], datasets: dict[str, Any]) -> Any:
    """Dataset ``name`` built from the ``[data]`` section ``data``, once per section:
    ``datasets`` caches it for the plans of one call."""
    key = json.dumps([name, data], sort_keys=True)
    if key not in datasets:
        datasets[key] = plugins.get("dataset", name).build(data)
    return datasets[key]


def run_plan(run: RunPlan, *, output: str | Path = "runs", echo: Callable[[str], None] = print,
             progress: bool | None = None, skip_existing: bool = True,
             fixed_network: tuple[Any, list[str]] | None = None,
             datasets: dict[str, Any] | None = None) -> list[dict[str, Any]]:
    """Run every (fold, seed) unit of ``run``; return the result dicts (new and resumed).

    A unit that raises is recorded as failed (``foldK-seedS.failed.json``, never counted as
    finished) and the other units go on; at the end :class:`UnitsFailed` says which failed
    and carries the finished results. A unit whose ``.lock`` another live run holds is left
    to that run. ``fixed_network`` = (trained network, its class texts) evaluates that
    network instead of building and training the model (selection policy ``checkpoint``).
    ``datasets``, a dict shared by the plans of one call, keeps each dataset built once per
    ``[data]`` section instead of re-scanning the disk for every model of a suite."""
    from dferbench.run import distributed as dist
    from dferbench.data.loader import ClipSet, resolve_pipeline, resolve_workers
    from dferbench.run.engine import resolve_device, seed_everything
    from dferbench.plugin.method import ModelContext, Monitor
    from dferbench.report.metrics import compute_metrics
    from dferbench.run.progress import progress_enabled

    output = check_output(output)
    progress = progress_enabled() if progress is None else progress
    config = run.config
    device = dist.init_from_env(resolve_device(config["train"]["device"]))  # torchrun: one GPU per rank
    dataset_reg = plugins.get("dataset", run.dataset_name)
    datasets = {} if datasets is None else datasets
    dataset = load_dataset(run.dataset_name, config["data"], datasets)
    folds = config["protocol"]["folds"] or dataset.folds
    missing = [f for f in folds if f not in dataset.splits]
    if missing:
        raise DferbenchError(f"dataset {run.dataset_name!r} has no fold {missing[0]}; valid folds: {dataset.folds}")
    main_process = dist.is_main_process()
    if not main_process:  # only rank 0 of a torchrun job talks and writes
        echo, progress = (lambda _message: None), False
    else:
        check_writable(output)
    skipped = dataset.notes.get("skipped_bad_clips", 0)
    if skipped:
        echo(f"note  {run.dataset_name}: {skipped} clips skipped as bad (data.skip_bad_clips); "
             "`dferbench check-data` lists them")
    data = config["data"]
    augmentation = dataset.augmentation if data["augmentation"] == "auto" else data["augmentation"]
    selection = "checkpoint" if fixed_network else config["protocol"]["selection"]
    protocol = run.protocol
    protocol.prepare(dataset, folds, datasets, echo)
    classes = list(protocol.classes)
    if fixed_network and len(fixed_network[1]) != len(protocol.model_classes):
        raise DferbenchError(f"the checkpoint scores {len(fixed_network[1])} classes but {run.dataset_name!r} has "
                             f"{len(protocol.model_classes)} ({', '.join(protocol.model_classes)})")

    def run_unit(fold: int, seed: int, path: Path) -> dict[str, Any]:
        if main_process:
            check_writable(path.parent, probe=False)
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
        workdir = output / ".work" / run.dataset_name
        ctx = ModelContext(model=run.model.name, dataset=run.dataset_name, fold=fold,
                           classes=list(protocol.model_classes),
                           config=copy.deepcopy(config), device=device, seed=seed, workdir=workdir,
                           texts=class_texts, progress=progress, unit_path=path)
        method = FixedNetwork(ctx, fixed_network[0]) if fixed_network else run.model.build(ctx)
        monitor = Monitor(selection, test_clips=test if selection == "best_on_test" else None, progress=progress,
                          unit=f"{run.run_name} on {run.dataset_name} fold {fold} seed {seed}", echo=echo,
                          config_hash=run.hash, **_training_files(path, config["train"]))
        fit_info = method.fit(train, monitor) or {}
        logits = protocol.scores(method.predict(test))
        metrics = compute_metrics(test.labels, logits)
        written = [str(p) for p in dict.fromkeys(ctx.written) if p.exists()]
        result = {
            "schema": SCHEMA_VERSION,
            "run_name": run.run_name,
            "model": run.model.name,
            "variant": cfg.variant_label(config, run.preset, run.spec),
            "dataset": run.dataset_name,
            "fold": fold,
            "seed": seed,
            "uar": round(metrics["uar"], 4),
            "war": round(metrics["war"], 4),
            "per_class_recall": metrics["per_class_recall"],
            "confusion": metrics["confusion"],
            "classes": list(classes),
            "n_train": len(train),
            "n_test": len(test),
            "selection": selection,
            "num_frames": data["num_frames"],
            "image_size": data["image_size"],
            "normalize": data["normalize"],
            "augmentation": train.augmentation,
            "family": run.model.family,
            "temporal": run.model.is_temporal(config["model"]),
            "config_hash": run.hash,
            "config": config,
            "fit": fit_info,
            "history": monitor.history,
            "dataset_notes": dict(dataset.notes),
            "plugins": {"model": run.model.plugin.name, "dataset": dataset_reg.plugin.name,
                        "versions": dict(plugins.plugin_versions)},
            "versions": versions(),
            "git_commit": git_commit(),
            "device": device,
            "precision": fit_info.get("precision", "fp32"),  # what the method computed in
            "data_pipeline": resolve_pipeline(data["pipeline"], device, resolve_workers(data["workers"], device)),
            "world_size": dist.rank_world()[1],
            "wall_seconds": round(time.perf_counter() - start, 2),
            "finished_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
            **({"files": written} if written else {}),
            **protocol.record(),
        }
        if main_process:
            preds = predictions_csv([r.clip_id for r in test.records], test.labels, logits, list(classes))
            save_unit(path, result, preds)
            path.with_suffix(".failed.json").unlink(missing_ok=True)
            monitor.finished()
        return result

    results: list[dict[str, Any]] = []
    failed: list[str] = []
    busy: list[str] = []
    try:
        for fold in folds:
            for seed in config["protocol"]["seeds"]:
                key = UnitKey(run.run_name, run.dataset_name, fold, seed, selection, protocol.protocol_dir)
                path = key.path(output)
                label = f"{run.run_name} on {run.dataset_name} fold {fold} seed {seed}"
                status, found, lock = claim(path, run.hash, classes, skip_existing, echo) if main_process \
                    else (None, None, None)
                status, found = dist.broadcast_object((status, found))  # every rank takes the same path
                if status == "done":
                    missed = cfg.switched_on(config, found.get("config", {}), run.spec)
                    echo(f"skip  {label}: result exists ({path})" + (
                        f"; it was made without {', '.join(k + '=true' for k in missed)}: --rerun to run it again"
                        if missed else ""))
                    results.append(found)
                    continue
                if status == "busy":
                    echo(f"busy  {label}: run by {found.get('host')} pid {found.get('pid')} since "
                         f"{found.get('started')} ({path.with_suffix('.lock')}); left to it")
                    busy.append(label)
                    continue
                echo(f"run   {label}")
                with lock or contextlib.nullcontext():
                    try:
                        results.append(run_unit(fold, seed, path))
                    except Exception as exc:  # the failure boundary of one unit
                        # a full disk or a read-only folder would stop every unit, also when it
                        # hit the core's files inside a plugin's fit (the history, the state)
                        stop = storage_error(exc.__cause__ if isinstance(exc, PluginFailure) else exc)
                        if stop is not None:
                            raise stop from exc
                        if debug():
                            raise
                        where = ""
                        if main_process:
                            try:
                                unit = {"run_name": run.run_name, "model": run.model.name, "dataset": run.dataset_name,
                                        "fold": fold, "seed": seed, "selection": selection, "config_hash": run.hash}
                                where = f" ({record_failure(path, unit, exc)})"
                            except OSError as record_exc:
                                raise storage_error(record_exc) or record_exc from exc
                        echo(f"failed {label}: {one_line(exc)}{where}")
                        failed.append(f"{label} ({one_line(exc)})")
                        continue
                done = results[-1]  # counted before it is said: an interrupt now keeps the count right
                echo(f"done  {run.run_name} fold {fold} seed {seed}: UAR {done['uar']:.2f}  WAR {done['war']:.2f}"
                     f"  ({done['wall_seconds']:.1f}s; {path})")
                for extra in done.get("files", []):
                    echo(f"wrote {extra}")
    except (KeyboardInterrupt, Terminated) as exc:
        exc.finished_units = getattr(exc, "finished_units", 0) + len(results)  # type: ignore[union-attr]
        raise
    if busy:
        echo(f"note  {len(busy)} units left to the runs that hold them: {', '.join(busy)}")
    if failed:
        raise units_failed(results, failed)
    return results
