"""The plugin contract: every hook dferbench calls, in the order a run needs them.

A plugin is any module or object with functions marked ``@dferbench.hookimpl`` whose
names match the specs below. Built-in datasets, models and text sets are plugins too,
loaded through the same ``dferbench`` entry-point group as third-party packages.

Each ``register`` hook receives a callback owned by the core: call it once per thing
you offer (zero or more times) and return None. The core validates names and rejects
duplicates, so a plugin never touches module-level registries.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Mapping, Protocol

import pluggy

if TYPE_CHECKING:
    from dferbench.data.records import DFERDataset
    from dferbench.models.checkpoints import CheckpointInfo, LoadedNetwork
    from dferbench.plugin.method import Method, ModelContext

hookspec = pluggy.HookspecMarker("dferbench")
hookimpl = pluggy.HookimplMarker("dferbench")

DatasetFactory = Callable[[Mapping[str, Any]], "DFERDataset"]
ModelFactory = Callable[["ModelContext"], "Method"]


class RegisterDataset(Protocol):
    def __call__(
        self,
        name: str,
        factory: DatasetFactory,
        *,
        description: str = "",
        options: Mapping[str, Any] | None = None,
        classes: list[str] | None = None,
        presets_like: str | None = None,
    ) -> None: ...


class RegisterModel(Protocol):
    def __call__(
        self,
        name: str,
        factory: ModelFactory,
        *,
        description: str = "",
        options: Mapping[str, Any] | None = None,
        presets: Mapping[str, str | Mapping[str, Any]] | None = None,
        family: str = "",
        temporal: bool = False,
        network: Callable[..., Any] | None = None,
        rebuild: Callable[[CheckpointInfo, str], Any] | None = None,
        load_checkpoint: Callable[[Path, Mapping[str, Any], str], LoadedNetwork] | None = None,
    ) -> None: ...


class RegisterPrompts(Protocol):
    def __call__(
        self,
        name: str,
        texts: Callable[[list[str]], list[list[str]]],
        *,
        description: str = "",
    ) -> None: ...


class RegisterClipModel(Protocol):
    def __call__(
        self,
        name: str,
        *,
        config: str | Path | None = None,
        weights: Mapping[str, str | Path] | None = None,
        source: str = "",
        description: str = "",
    ) -> None: ...


class RegisterFaceDetector(Protocol):
    def __call__(self, name: str, factory: Callable[..., Any], *, description: str = "") -> None: ...


class RegisterCommands(Protocol):
    def __call__(self, command: Any) -> None: ...


@hookspec
def dferbench_register_datasets(register: RegisterDataset) -> None:
    """Offer datasets. Runs once per process, the first time the dataset registry is read.

    Call ``register(name, factory, description=..., options=..., classes=..., presets_like=...)``
    once per dataset. ``classes`` (optional): the class names in label order when they are fixed,
    so that checkpoints can be named and checked without the data. ``presets_like``
    (optional): the name of a dataset whose model presets runs on this one take, for a
    variant of a benchmark (``synthetic-wild`` takes ``synthetic``'s); a model's preset for
    this very dataset still wins. ``options`` maps each option the dataset understands to its default (for example
    ``{"root": ""}``); the defaults join the run's ``[data]`` config section, their
    types are enforced on ``--set data.KEY=VALUE``. ``factory(options)`` receives the
    whole effective ``[data]`` section and returns a
    :class:`dferbench.data.records.DFERDataset`. Import heavy libraries inside the
    factory, not at module level.
    """


@hookspec
def dferbench_register_models(register: RegisterModel) -> None:
    """Offer models (methods). Runs once per process, the first time the model registry is read.

    Call ``register(name, factory, description=..., options=..., presets=..., family=...,
    temporal=...)`` once per model.

    - ``options``: the model's own settings and their defaults (the ``[model]`` config
      section). Types are enforced on ``--set model.KEY=VALUE``.
    - ``presets``: per dataset name (or ``"default"``), a TOML file path or a dict that
      overrides any config section (``model``, ``train``, ``data``, ``protocol``) with
      the published settings for that dataset.
    - ``family``: ``"classifier-based"`` or ``"text-based"`` (leaderboard column);
      ``temporal``: whether the method models time (leaderboard column; a run with
      ``temporal_depth = 0`` counts as without).
    - ``network`` (optional): ``network(class_texts, options, num_frames, device)`` returning
      the bare ``torch.nn.Module``, for ``dferbench.api.build_model``.
    - ``rebuild`` (optional): ``rebuild(info, device)`` returning the network a dferbench
      checkpoint describes (``info``: its :class:`~dferbench.models.checkpoints.CheckpointInfo`,
      with the ``rebuild`` data the method passed to ``ctx.save_checkpoint``), weights
      arbitrary: the core loads and checks them. For ``predict`` and ``evaluate``.
    - ``load_checkpoint`` (optional): ``load_checkpoint(path, options, device)`` returning a
      :class:`~dferbench.models.checkpoints.LoadedNetwork` for a file of the model's own
      kind that is not a dferbench checkpoint (DFER-CLIP: its authors' ``.pth``).

    ``factory(ctx)`` receives a :class:`dferbench.plugin.method.ModelContext` (class names,
    effective config, device, seed, output directory) and returns a
    :class:`dferbench.plugin.method.Method`, an object with ``fit(train, monitor)`` and
    ``predict(clips)``.
    """


@hookspec
def dferbench_register_prompts(register: RegisterPrompts) -> None:
    """Offer text sets: what a text-based model reads for each class.

    Call ``register(name, texts, description=...)`` once per text set.
    ``texts(class_names)`` returns, for each class in order, a non-empty list of
    sentences (one sentence for a single prompt; several form a template ensemble that
    zero-shot models average). Raise ``KeyError`` naming the class when the text set
    has nothing for one of them.
    """


@hookspec
def dferbench_register_clip_models(register: RegisterClipModel) -> None:
    """Offer CLIP architectures and weights that open_clip does not ship. Runs once per
    process, the first time a CLIP model is built or listed.

    Call ``register(name, config=..., weights=..., source=..., description=...)`` once per
    architecture. ``config`` is an open_clip model-config JSON file (``embed_dim``,
    ``vision_cfg``, ``text_cfg``) registered under ``name``; leave it None for an
    architecture open_clip already knows. ``weights`` maps a pretrained tag to a local file
    holding that architecture's state dict (``.safetensors``, or a torch file read without
    unpickling code); a model then uses ``clip_model = name`` and ``pretrained = tag``.
    ``source`` says how to obtain or rebuild a weights file that is missing.
    """


@hookspec
def dferbench_register_face_detectors(register: RegisterFaceDetector) -> None:
    """Offer face detectors for ``dferbench predict``. Runs once per process, the first time
    the detector registry is read.

    Call ``register(name, factory, description=...)`` once per detector. ``factory(device=...)``
    returns an object with ``detect(frames: uint8 [N, H, W, 3]) -> list[list[Box]]`` (one list
    of :class:`dferbench.predict.tracking.Box` per frame, with a confidence score); an object
    whose ``whole_frame`` attribute is true skips detection (the frames are face crops already).
    Import heavy libraries inside the factory; raise :class:`dferbench.errors.DferbenchError`
    saying how to install what is missing.
    """


@hookspec
def dferbench_register_commands(register: RegisterCommands) -> None:
    """Offer extra ``dferbench`` subcommands. Runs once, when the command line starts.

    Call ``register(command)`` with a ``click.Command`` (or group) per subcommand. Import
    heavy libraries inside the command, so that ``dferbench --help`` stays fast.
    """
