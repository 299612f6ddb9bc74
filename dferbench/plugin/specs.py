"""What plugins register: one frozen dataclass per kind, built by the core's ``register``.

A plugin never builds these itself: it calls the ``register(...)`` callback its hook
receives (signatures in :mod:`dferbench.plugin.hookspecs`), and the core turns the call
into a spec, filling in ``plugin`` (who registered it). Everything the harness does with
a plugin's code goes through a spec's methods (:meth:`DatasetSpec.build`,
:meth:`ModelSpec.build`, :meth:`TextSetSpec.texts_for`, ...), which run it inside the
failure boundary (:mod:`dferbench.plugin.boundary`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Mapping

from dferbench.plugin.boundary import PluginInfo, call

if TYPE_CHECKING:
    import numpy as np

    from dferbench.data.checks import CheckReport
    from dferbench.data.loader import ClipSet
    from dferbench.data.records import DFERDataset
    from dferbench.models.checkpoints import CheckpointInfo, LoadedNetwork
    from dferbench.plugin.method import Method, ModelContext, Monitor

DatasetFactory = Callable[[Mapping[str, Any]], "DFERDataset"]
"""``factory(options)``: the effective ``[data]`` section -> a :class:`~dferbench.data.records.DFERDataset`."""
DatasetCheck = Callable[[Mapping[str, Any], "CheckReport"], None]
"""``check(options, report)``: add what is wrong with the dataset's files to ``report``."""
ModelFactory = Callable[["ModelContext"], "Method"]
"""``factory(ctx)``: a :class:`~dferbench.plugin.method.ModelContext` -> a
:class:`~dferbench.plugin.method.Method`."""
TextSet = Callable[[list[str]], list[list[str]]]
"""``texts(class_names)``: per class, in order, a non-empty list of sentences."""

FAMILIES = ("", "classifier-based", "text-based")

UNREGISTERED = PluginInfo("(none)", "", "")


@dataclass(frozen=True)
class DatasetSpec:
    """A registered dataset.

    ``options``: the settings it understands and their defaults (joined to ``[data]``).
    ``classes``: the class names in label order when they are fixed (checkpoints are
    named and checked against them without the data).
    ``profile``: settings that suit it for the built-in models, by section (``data``:
    ``num_frames``, ``normalize``...; ``model``: ``clip_model``, ``pretrained``...); a
    model's preset for this very dataset overrides them, and model keys a model does
    not have are left out. ``presets_like``: the dataset whose model presets runs on this
    one take when a model has none for it (a variant of a benchmark takes its recipe).
    ``check``: an optional dataset-specific check for ``dferbench check-data``, run before
    the generic one.
    """

    name: str
    factory: DatasetFactory
    description: str = ""
    options: Mapping[str, Any] = field(default_factory=dict)
    classes: list[str] | None = None
    profile: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    presets_like: str | None = None
    check: DatasetCheck | None = None
    plugin: PluginInfo = UNREGISTERED

    def build(self, options: Mapping[str, Any]) -> DFERDataset:
        """The dataset for these ``[data]`` settings, built inside the failure boundary."""
        return call(self.plugin, f"dataset {self.name!r}", self.factory, dict(options))


@dataclass(frozen=True)
class ModelSpec:
    """A registered model (method) and the capabilities it offers.

    ``presets``: per dataset name or ``"default"``, a TOML path or a dict of sections.
    ``family``: ``classifier-based`` / ``text-based`` (a leaderboard column).
    ``temporal``: whether it models time, or ``temporal(options) -> bool``.
    ``input_size(options) -> int``: the square image side the model needs for these
    ``[model]`` options (e.g. its CLIP's input); ``data.image_size = 0`` follows it.
    ``network(class_texts, options, num_frames, device)``: the bare ``torch.nn.Module``.
    ``optimizer(network, **settings)``: its ``(optimizer, scheduler)``.
    ``rebuild(info, device)``: the network a dferbench checkpoint's sidecar describes.
    ``load_checkpoint(path, options, device)``: a ``LoadedNetwork`` from a file of the
    model's own kind that is not a dferbench checkpoint (DFER-CLIP: the authors' ``.pth``).
    """

    name: str
    factory: ModelFactory
    description: str = ""
    options: Mapping[str, Any] = field(default_factory=dict)
    presets: Mapping[str, str | Path | Mapping[str, Any]] = field(default_factory=dict)
    family: str = ""
    temporal: bool | Callable[[Mapping[str, Any]], bool] = False
    input_size: Callable[[Mapping[str, Any]], int] | None = None
    weights_help: str = ""
    network: Callable[..., Any] | None = None
    optimizer: Callable[..., Any] | None = None
    rebuild: Callable[[CheckpointInfo, str], Any] | None = None
    load_checkpoint: Callable[[Path, Mapping[str, Any], str], LoadedNetwork] | None = None
    plugin: PluginInfo = UNREGISTERED

    def build(self, ctx: ModelContext) -> Method:
        """The method for one unit; its ``fit`` and ``predict`` run inside the failure boundary."""
        method = call(self.plugin, f"model {self.name!r}", self.factory, ctx)
        return GuardedMethod(self, method)

    def is_temporal(self, options: Mapping[str, Any]) -> bool:
        """Whether a run with these ``[model]`` options models time."""
        if callable(self.temporal):
            return bool(call(self.plugin, f"model {self.name!r} temporal", self.temporal, options))
        return bool(self.temporal)

    def image_size(self, options: Mapping[str, Any]) -> int | None:
        """The input side the model needs with these options, or None when it does not say."""
        if self.input_size is None:
            return None
        return int(call(self.plugin, f"model {self.name!r} input_size", self.input_size, options))

    def capability(self, name: str) -> Callable[..., Any]:
        """The registered ``network`` / ``optimizer`` / ``load_checkpoint``, run inside the
        boundary; a one-line error when the model does not offer it."""
        from dferbench.errors import DferbenchError

        fn = getattr(self, name)
        if fn is None:
            raise DferbenchError(f"model {self.name!r} ({self.plugin}) does not offer `{name}`: its plugin "
                                 f"registers none (register(..., {name}=...))")
        return lambda *args, **kwargs: call(self.plugin, f"model {self.name!r} {name}", fn, *args, **kwargs)


class GuardedMethod:
    """A method whose ``fit`` and ``predict`` run inside the failure boundary."""

    def __init__(self, spec: ModelSpec, method: Any):
        self.spec, self.method = spec, method

    def fit(self, train: ClipSet, monitor: Monitor) -> dict[str, Any]:
        return call(self.spec.plugin, f"model {self.spec.name!r} fit", self.method.fit, train, monitor)

    def predict(self, clips: ClipSet) -> np.ndarray:
        return call(self.spec.plugin, f"model {self.spec.name!r} predict", self.method.predict, clips)


@dataclass(frozen=True)
class TextSetSpec:
    """A registered text set: what text-based models read for each class."""

    name: str
    texts: TextSet
    description: str = ""
    plugin: PluginInfo = UNREGISTERED

    def texts_for(self, classes: list[str]) -> list[list[str]]:
        """The sentences for each of ``classes``, checked: one non-empty list per class."""
        from dferbench.errors import DferbenchError

        texts = call(self.plugin, f"text set {self.name!r}", self.texts, list(classes))
        if (not isinstance(texts, list) or len(texts) != len(classes)
                or not all(isinstance(t, list) and t and all(isinstance(s, str) for s in t) for t in texts)):
            raise DferbenchError(f"text set {self.name!r} ({self.plugin}) must return a non-empty list of "
                                 f"sentences for each of {classes}")
        return texts


@dataclass(frozen=True)
class ClipModelSpec:
    """A registered CLIP architecture (an open_clip config file) and/or weights files by tag."""

    name: str
    config: str | Path | None = None
    weights: Mapping[str, str | Path] = field(default_factory=dict)
    source: str = ""
    description: str = ""
    plugin: PluginInfo = UNREGISTERED


@dataclass(frozen=True)
class FaceDetectorSpec:
    """A registered face detector for ``dferbench predict``: ``factory(device=...)`` builds it."""

    name: str
    factory: Callable[..., Any]
    description: str = ""
    plugin: PluginInfo = UNREGISTERED

    def build(self, **kwargs: Any) -> Any:
        """The detector (``detect(frames) -> boxes per frame``), built inside the failure boundary."""
        return call(self.plugin, f"face detector {self.name!r}", self.factory, **kwargs)


@dataclass(frozen=True)
class CommandSpec:
    """A registered click command; ``group`` is ``""`` (top level) or ``"bench"``."""

    command: Any
    group: str = ""
    plugin: PluginInfo = UNREGISTERED

    @property
    def name(self) -> str:
        return self.command.name
