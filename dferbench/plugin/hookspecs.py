"""The plugin contract: every hook dferbench calls, in the order a run needs them.

A plugin is any module or object with functions marked ``@dferbench.hookimpl`` whose
names match the specs below. The built-in datasets, models and text sets are plugins
too, registered by module path; third-party packages advertise theirs in the
``dferbench`` entry-point group.

Each ``register`` hook receives a callback owned by the core: call it once per thing you
offer (zero or more times) and return None. Its signature is the ``Register*`` protocol
below, exactly: an unknown keyword, a bad name or a value of the wrong kind is rejected
with a :class:`~dferbench.errors.PluginError` naming your plugin and its distribution.
The core turns each call into a frozen spec (:mod:`dferbench.plugin.specs`); a name that
clashes with a built-in's is skipped with a warning, never breaking the others. An
exception inside a hook is reported with your plugin's name and its registrations in that
hook are skipped; every other plugin still loads.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Mapping, Protocol

import pluggy

if TYPE_CHECKING:
    from dferbench.models.checkpoints import CheckpointInfo, LoadedNetwork
    from dferbench.plugin.specs import DatasetCheck, DatasetFactory, ModelFactory, TextSet

hookspec = pluggy.HookspecMarker("dferbench")
hookimpl = pluggy.HookimplMarker("dferbench")


class RegisterDataset(Protocol):
    def __call__(
        self,
        name: str,
        factory: DatasetFactory,
        *,
        description: str = "",
        options: Mapping[str, Any] | None = None,
        classes: list[str] | None = None,
        profile: Mapping[str, Mapping[str, Any]] | None = None,
        presets_like: str | None = None,
        check: DatasetCheck | None = None,
    ) -> None: ...


class RegisterModel(Protocol):
    def __call__(
        self,
        name: str,
        factory: ModelFactory,
        *,
        description: str = "",
        options: Mapping[str, Any] | None = None,
        presets: Mapping[str, str | Path | Mapping[str, Any]] | None = None,
        family: str = "",
        temporal: bool | Callable[[Mapping[str, Any]], bool] = False,
        input_size: Callable[[Mapping[str, Any]], int] | None = None,
        weights_help: str = "",
        network: Callable[..., Any] | None = None,
        optimizer: Callable[..., Any] | None = None,
        rebuild: Callable[[CheckpointInfo, str], Any] | None = None,
        load_checkpoint: Callable[[Path, Mapping[str, Any], str], LoadedNetwork] | None = None,
    ) -> None: ...


class RegisterPrompts(Protocol):
    def __call__(self, name: str, texts: TextSet, *, description: str = "") -> None: ...


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
    def __call__(self, command: Any, *, group: str = "") -> None: ...


@hookspec
def dferbench_register_datasets(register: RegisterDataset) -> None:
    """Offer datasets. Runs once per process, the first time the dataset registry is read.

    Call ``register(name, factory, description=..., options=..., classes=..., profile=...,
    presets_like=..., check=...)`` once per dataset.

    - ``factory(options)`` receives the whole effective ``[data]`` section (a dict) and
      returns a :class:`dferbench.DFERDataset`. Import heavy libraries inside it. Its
      ``emotions`` (default: the class names) name each class canonically
      (:data:`dferbench.EMOTIONS`); cross-dataset transfer matches classes by them.
    - ``options``: each setting the dataset understands and its default (for example
      ``{"root": ""}``), plain values or ``dferbench.Option`` objects; the defaults join the
      run's ``[data]`` section, and every value is checked before a run starts.
    - ``classes``: the class names in label order when they are fixed, so that checkpoints
      can be named and checked without the data.
    - ``profile``: the settings that suit this dataset for the built-in models, as
      ``{"data": {...}, "model": {...}}``: frames (``num_frames``), normalisation
      (``normalize``), which CLIP (``clip_model``, ``pretrained``). A model's preset for
      this very dataset overrides them; model keys a model does not have are left out.
      The image size follows the model (``data.image_size = 0``), so leave it out.
    - ``presets_like`` (optional): the name of a dataset whose model presets runs on this
      one take, for a variant of a benchmark (``synthetic-wild`` takes ``synthetic``'s
      recipe: epochs, schedule, batch); a model's preset for this very dataset wins
      instead. The profile stays this dataset's own.
    - ``check(options, report)`` (optional): the dataset's own checks for
      ``dferbench check-data`` (its annotation files, with file and line), adding
      findings with ``report.add(kind, message)`` (kinds: :data:`dferbench.CHECK_KINDS`).
      The generic checks (every sampled frame decodes, labels in range, duplicates,
      train/test overlap, empty splits, frame counts) run on every dataset anyway.
    """


@hookspec
def dferbench_register_models(register: RegisterModel) -> None:
    """Offer models (methods). Runs once per process, the first time the model registry is read.

    Call ``register(name, factory, description=..., options=..., presets=..., family=...,
    temporal=..., input_size=..., weights_help=..., network=..., optimizer=..., rebuild=...,
    load_checkpoint=...)`` once per model; only ``name`` and ``factory`` are required.

    - ``factory(ctx)`` receives a :class:`dferbench.ModelContext` (class names, effective
      config, device, seed, fold, work directory, text sets) and returns a
      :class:`dferbench.Method`: an object with ``fit(train, monitor)`` and ``predict(clips)``.
    - ``options``: the model's own settings and their defaults (the ``[model]`` section),
      plain values or ``dferbench.Option`` objects.
    - ``presets``: per dataset name (or ``"default"``), a TOML file path or a dict that
      overrides any config section (``model``, ``train``, ``data``, ``protocol``) with
      the published settings for that dataset.
    - ``family``: ``"classifier-based"`` or ``"text-based"`` (leaderboard column).
    - ``temporal``: whether the method models time, or ``temporal(options) -> bool`` when
      an option can switch it off (leaderboard column).
    - ``input_size(options) -> int``: the square image side the model needs with these
      ``[model]`` options (a CLIP's input resolution); ``data.image_size`` follows it.
    - ``weights_help``: one sentence saying where the model's CLIP weights come from, shown
      when they are missing (``dferbench weights``).
    - ``network(class_texts, options, num_frames, device)``: the bare ``torch.nn.Module``
      (``video [B, T, 3, H, W] -> logits [B, C]``), for :func:`dferbench.api.build_model`.
    - ``optimizer(network, **settings)``: ``(optimizer, scheduler)`` as the method trains
      it, for :func:`dferbench.api.build_optimizer`.
    - ``rebuild(info, device)``: the network a dferbench checkpoint describes (``info``: its
      :class:`dferbench.CheckpointInfo`, with the ``rebuild`` data the method passed to
      ``ctx.save_checkpoint``), weights arbitrary: the core loads and checks them. For
      ``predict`` and ``evaluate``.
    - ``load_checkpoint(path, options, device)``: a :class:`dferbench.LoadedNetwork` for a
      file of the model's own kind that is not a dferbench checkpoint (DFER-CLIP: its
      authors' ``.pth``); ``options``: the run's ``[model]`` section.
    """


@hookspec
def dferbench_register_prompts(register: RegisterPrompts) -> None:
    """Offer text sets: what a text-based model reads for each class. Runs once per
    process, the first time the text-set registry is read.

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
    ``vision_cfg``, ``text_cfg``) named ``<name>.json``; leave it None for an architecture
    open_clip already knows. ``weights`` maps a pretrained tag to a local file holding that
    architecture's state dict (``.safetensors``, or a torch file read without unpickling
    code); a model then uses ``clip_model = name`` and ``pretrained = tag``. ``source``
    says how to obtain or rebuild a weights file that is missing.
    """


@hookspec
def dferbench_register_face_detectors(register: RegisterFaceDetector) -> None:
    """Offer face detectors for ``dferbench predict``. Runs once per process, the first time
    the detector registry is read.

    Call ``register(name, factory, description=...)`` once per detector. ``factory(device=...)``
    returns an object with ``detect(frames: uint8 [N, H, W, 3]) -> list[list[Box]]`` (one list
    of :class:`dferbench.Box` per frame, with a confidence score); an object
    whose ``whole_frame`` attribute is true skips detection (the frames are face crops already).
    Import heavy libraries inside the factory; raise :class:`dferbench.DferbenchError`
    saying how to install what is missing.
    """


@hookspec
def dferbench_register_commands(register: RegisterCommands) -> None:
    """Offer extra ``dferbench`` subcommands. Runs once, when the command line starts.

    Call ``register(command, group=...)`` with a ``click.Command`` (or group) per
    subcommand: ``group=""`` makes it ``dferbench NAME``, ``group="bench"`` makes it
    ``dferbench bench NAME``. A name that clashes with a built-in command is skipped with
    a warning. Import heavy libraries inside the command, so ``dferbench --help`` stays fast.
    """
