"""A trained network from a checkpoint file, with what it scores: for ``evaluate`` and
``predict``, for any model.

A dferbench checkpoint (:mod:`dferbench.models.checkpoints`) names its model; the
model's registered ``rebuild`` capability builds the network from the sidecar and the
core loads and checks the weights. Any other file (the DFER-CLIP authors' ``.pth``, an
older format) is read by the ``load_checkpoint`` capability of the model the user names
(default: the one registered model that reads such files); when such a file does not
record its classes, the dataset the
user names does (its registered class list), and the file's clip settings go over that
dataset's preset. Every problem is one :class:`~dferbench.models.checkpoints.CheckpointError`
line naming the file.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Sequence

from torch import nn

from dferbench.errors import DferbenchError
from dferbench.models import checkpoints as ck
from dferbench.models.checkpoints import CheckpointError, CheckpointInfo, LoadedNetwork
from dferbench.plugin import manager as plugins
from dferbench.plugin.boundary import PluginFailure
from dferbench.plugin.specs import ModelSpec


def foreign_readers() -> list[str]:
    """The registered models that read checkpoint files which are not dferbench's (their
    ``load_checkpoint``: DFER-CLIP reads its authors' ``.pth``)."""
    return sorted(name for name, spec in plugins.models().items() if spec.load_checkpoint is not None)


def _foreign_reader(path: Path) -> str:
    able = foreign_readers()
    if len(able) != 1:
        raise CheckpointError(f"{path} is not a dferbench checkpoint: name the model that reads it with --model "
                              f"(models that read other checkpoint files: {', '.join(able) or 'none'})")
    return able[0]


@dataclass(frozen=True)
class LoadedCheckpoint:
    """A trained network in eval mode, on the device asked for, and what it scores
    (``info``: for a file that is not a dferbench checkpoint, what the file, the named
    dataset and its preset say together)."""

    network: nn.Module
    info: CheckpointInfo
    path: Path
    message: str


def dataset_classes(dataset: str, model: str, overrides: Sequence[str] = ()) -> list[str]:
    """The class names of ``dataset`` in label order: the list its plugin registered
    (``register(..., classes=[...])``), else those of the dataset built with ``model``'s
    preset for it and ``overrides`` (a ``custom`` dataset's file, say)."""
    spec = plugins.get("dataset", dataset)
    if spec.classes:
        return list(spec.classes)
    return list(spec.build(_settings(model, dataset, overrides)["data"]).classes)


def _call(spec: ModelSpec, capability: str, path: Path, *args: Any) -> Any:
    """A model's capability, in the failure boundary; a failure is one line naming the file."""
    try:
        return spec.capability(capability)(*args)
    except PluginFailure as exc:
        raise CheckpointError(f"{path}: {exc}") from exc.__cause__


def _check_classes(path: Path, classes: Sequence[str], dataset: str, model: str, overrides: Sequence[str]) -> None:
    wanted = dataset_classes(dataset, model, overrides)
    if list(classes) != wanted:
        raise CheckpointError(f"{path} scores {len(classes)} classes ({', '.join(classes)}) but dataset {dataset!r} "
                              f"has {len(wanted)} ({', '.join(wanted)}): it was trained on another label set")


def _settings(model: str, dataset: str, overrides: Sequence[str]) -> dict[str, dict[str, Any]]:
    """The effective config of ``model`` on ``dataset`` with ``overrides`` (no data is read)."""
    from dferbench.run import runner

    return runner.plan(model, dataset, overrides=list(overrides), weights=False).config  # the file has the weights


def _own(path: Path, info: CheckpointInfo, model: str | None, dataset: str | None, overrides: Sequence[str],
         device: str) -> LoadedCheckpoint:
    sidecar = ck.sidecar_path(path)
    if model and model != info.model:
        raise CheckpointError(f"{path} is a checkpoint of model {info.model!r}, not {model!r}: leave the model out "
                              "(a dferbench checkpoint names its own)")
    registry = plugins.models()
    if info.model not in registry:
        raise CheckpointError(f"{sidecar}: model {info.model!r} (plugin {info.plugin or '?'}) is not installed; "
                              f"installed models: {', '.join(sorted(registry))}")
    spec = registry[info.model]
    if spec.rebuild is None:
        raise CheckpointError(f"{path}: model {info.model!r} ({spec.plugin}) cannot rebuild its network from "
                              "a checkpoint: its plugin registers no `rebuild`")
    weights = ck.read_weights(path)  # damaged weights are said before any building
    network = _call(spec, "rebuild", path, info, "cpu")
    ck.load_state(network, weights, path)
    if dataset:
        _check_classes(path, info.classes, dataset, info.model, overrides)
    trained = f" trained on {info.dataset} fold {info.fold} seed {info.seed}" if info.dataset else ""
    message = (f"loaded the {info.model} checkpoint {path}{trained}: {len(info.classes)} classes "
               f"({', '.join(info.classes)})")
    return LoadedCheckpoint(network.to(device).eval(), info, path, message)


def _text_set_of(texts: list[str], classes: list[str], preferred: str) -> str:
    """The registered single-sentence text set whose texts for ``classes`` are ``texts``
    (``preferred`` tried first), or ``""``. Compared as the CLIP tokenizer sees text:
    case, spacing and the space BPE decoding puts before punctuation do not count."""
    import re

    from dferbench.run.runner import class_texts

    def plain(text: str) -> str:
        return re.sub(r"\s+([.,;:!?])", r"\1", " ".join(text.lower().split()))

    wanted = [plain(t) for t in texts]
    for name in [n for n in [preferred] if n] + sorted(set(plugins.prompts()) - {preferred}):
        try:
            found = class_texts(name, classes)
        except (DferbenchError, KeyError):
            continue
        if all(len(t) == 1 for t in found) and [plain(t[0]) for t in found] == wanted:
            return name
    return ""


def _foreign(path: Path, model: str, dataset: str | None, overrides: Sequence[str], device: str) -> LoadedCheckpoint:
    spec = plugins.get("model", model)
    if spec.load_checkpoint is None:
        raise CheckpointError(f"{path} is not a dferbench checkpoint, and model {model!r} ({spec.plugin}) "
                              "reads no files of its own (its plugin registers no `load_checkpoint`)")
    config = _settings(model, dataset, overrides) if dataset else {"data": {}, "model": {}}
    loaded: LoadedNetwork = _call(spec, "load_checkpoint", path, path, config["model"], "cpu")
    texts = list(loaded.class_texts)
    if loaded.classes is not None:
        classes = list(loaded.classes)
        if len(texts) != len(classes):
            raise CheckpointError(f"{path} scores {len(texts)} classes but the file lists {len(classes)} "
                                  f"({', '.join(classes)}): its classes and its network disagree")
        if dataset:
            _check_classes(path, classes, dataset, model, overrides)
    elif dataset:
        classes = dataset_classes(dataset, model, overrides)
        if len(texts) != len(classes):
            raise CheckpointError(f"{path} scores {len(texts)} classes but dataset {dataset!r} has {len(classes)} "
                                  f"({', '.join(classes)}): it was trained on another label set")
    else:
        raise CheckpointError(f"{path} does not say which classes it scores: name the dataset it was trained on "
                              "(--dataset dfew, ferv39k or mafw for the DFER-CLIP authors' files)")
    settings = {**config["data"], **loaded.data}
    unknown = [key for key in ("num_frames", "image_size", "normalize") if key not in settings]
    if unknown:
        raise CheckpointError(f"{path} does not record its {', '.join(unknown)}: name the dataset it was trained on "
                              "(--dataset), whose preset gives them")
    text_set = _text_set_of(texts, classes, str(config["model"].get("text", "")))
    info = CheckpointInfo(model=model, classes=classes, class_texts=texts, num_frames=int(settings["num_frames"]),
                          image_size=int(settings["image_size"]), normalize=str(settings["normalize"]),
                          text_set=text_set, plugin=spec.plugin.name, plugin_version=spec.plugin.version,
                          dataset=dataset or "")
    message = loaded.message or f"loaded {path} with model {model!r}"
    if loaded.classes is None:
        message += (f"; classes of {dataset!r}, class texts "
                    + (f"those of text set {text_set!r}" if text_set else "of no registered text set"))
    return LoadedCheckpoint(loaded.network.to(device).eval(), info, path, message)


def reading_model(path: str | Path, model: str | None = None) -> str | None:
    """The model that will read the checkpoint ``path``, known without reading its weights:
    ``model`` when given, else the one its dferbench sidecar names, else the one registered
    model that reads other files; None when that is not known yet (:func:`open_checkpoint`
    then says why)."""
    if model:
        return model
    sidecar = ck.sidecar_path(path)
    if sidecar.is_file():
        try:
            named = ck.read_sidecar(path).get("model")
        except (CheckpointError, AttributeError):
            return None
        return named if isinstance(named, str) else None
    able = foreign_readers()
    return able[0] if len(able) == 1 else None


def check_settings(path: str | Path, *, model: str | None, dataset: str | None, overrides: Sequence[str] = (),
                   folds: Sequence[int] | None = None, device: str | None = None) -> None:
    """Plan the model that will read ``path`` on ``dataset`` with ``overrides``, so that a bad
    setting stops ``evaluate`` or ``predict`` in one line before the checkpoint is opened."""
    from dferbench.run import runner

    name = reading_model(path, model)
    if name and dataset and (model or name in plugins.models()):  # an uninstalled model: open_checkpoint says so
        runner.plan(name, dataset, overrides=list(overrides), folds=list(folds) if folds else None, device=device,
                    weights=False)


def open_checkpoint(path: str | Path, *, model: str | None = None, dataset: str | None = None,
                    overrides: Sequence[str] = (), device: str = "cpu") -> LoadedCheckpoint:
    """Read a checkpoint file of any kind dferbench knows and rebuild its network.

    Args:
        path: a dferbench ``.checkpoint.safetensors`` (its sidecar next to it) or a file a
            model reads itself (the DFER-CLIP authors' ``.pth``).
        model: the model the file belongs to; a dferbench checkpoint names its own (a
            different name is an error); default for other files: the one registered model
            that reads such files (:func:`foreign_readers`).
        dataset: the dataset whose classes the network must score (names and order);
            for a file that does not record its classes, the dataset that names them.
        overrides: ``SECTION.KEY=VALUE`` settings of that dataset's preset.
        device: where the network goes.

    Raises:
        CheckpointError: one line naming the file and what is wrong.
    """
    path = Path(path)
    info = ck.read_info(path) if ck.file_kind(path) == "safetensors" else None
    if info is not None:
        return _own(path, info, model, dataset, overrides, device)
    return _foreign(path, model or _foreign_reader(path), dataset, overrides, device)


def checkpoint_plan(checkpoint: str | Path, *, model: str | None, dataset: str, overrides: Sequence[str] = (),
                    folds: list[int] | None = None, device: str | None = None,
                    echo: Callable[[str], None] = print) -> tuple[Any, tuple[nn.Module, list[str]]]:
    """The run plan that scores ``checkpoint`` on the test split of ``dataset``'s ``folds``
    (default: fold 1), and the ``(network, class texts)`` to give
    :func:`dferbench.run.runner.run_plan` as ``fixed_network``. The file's clip settings
    (frames, image size, normalisation) go over the model's preset for ``dataset``; a bad
    setting stops in one line before the file is opened (:func:`check_settings`)."""
    from dferbench.run import runner

    check_settings(checkpoint, model=model, dataset=dataset, overrides=overrides, folds=folds or [1], device=device)
    loaded = open_checkpoint(checkpoint, model=model, dataset=dataset, overrides=overrides)
    info = loaded.info
    echo(loaded.message)
    fixed = [f"data.{key}={json.dumps(getattr(info, key))}" for key in ("num_frames", "image_size", "normalize")]
    plan = runner.plan(info.model, dataset, overrides=fixed + list(overrides), folds=folds or [1], device=device,
                       weights=False)  # the checkpoint holds the CLIP weights
    plan.run_name = f"{info.model}[checkpoint={Path(checkpoint).name}]"
    return plan, (loaded.network, info.class_texts)
