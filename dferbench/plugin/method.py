"""The contract between the harness and a model plugin.

A model factory receives a :class:`ModelContext` and returns a :class:`Method`. The
harness then calls ``fit`` once with the training clips of one fold (methods that do
not train return at once) and ``predict`` once with the test clips.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Mapping, Protocol

import numpy as np

from dferbench.errors import DferbenchError

if TYPE_CHECKING:
    from torch import nn

    from dferbench.data.loader import ClipSet


@dataclass
class ModelContext:
    """Everything a model factory may need to build a method for one unit."""

    model: str
    dataset: str
    fold: int
    classes: list[str]
    config: dict[str, dict[str, Any]]
    device: str
    seed: int
    workdir: Path
    texts: Callable[[str, list[str]], list[list[str]]]
    progress: bool = False
    unit_path: Path | None = None  # the unit's result file; None outside a run
    written: list[Path] = field(default_factory=list)

    def unit_file(self, suffix: str) -> Path:
        """Where the method writes a file of this unit: next to its result, so
        ``unit_file("checkpoint.safetensors")`` is ``.../foldK-seedS.checkpoint.safetensors``.
        The runner prints each such file that exists when the unit ends and lists it in the
        result's ``files``."""
        base = self.unit_path or self.workdir / f"fold{self.fold}-seed{self.seed}.json"
        path = base.with_suffix("." + suffix)
        self.written.append(path)
        return path

    @property
    def options(self) -> dict[str, Any]:
        """The ``[model]`` section: this model's own settings."""
        return self.config["model"]

    @property
    def train(self) -> dict[str, Any]:
        return self.config["train"]

    def save_checkpoint(self, network: nn.Module, *, rebuild: Mapping[str, Any],
                        class_texts: list[str] | None = None, text_set: str = "") -> Path:
        """Write ``network`` as this unit's dferbench checkpoint,
        ``foldK-seedS.checkpoint.safetensors`` + ``.checkpoint.json`` next to its result,
        so that ``dferbench predict`` and ``evaluate`` can use it.

        ``rebuild``: JSON data from which the model's registered ``rebuild(info, device)``
        capability builds the same network again (for DFER-CLIP, its options and CLIP
        architecture); ``class_texts``: what the network scores per class (default: the
        class names); ``text_set``: the text set they came from. The sidecar also records
        the model and its plugin, the classes, the clip settings of ``[data]``, the
        dataset, fold, seed and the effective config. Returns the weights' path."""
        from dferbench import __version__
        from dferbench.models.checkpoints import CheckpointInfo, save_checkpoint
        from dferbench.plugin import manager as plugins
        from dferbench.run.config import config_hash

        plugin = plugins.get("model", self.model).plugin
        data = self.config["data"]
        info = CheckpointInfo(
            model=self.model, classes=list(self.classes), class_texts=list(class_texts or self.classes),
            num_frames=data["num_frames"], image_size=data["image_size"], normalize=data["normalize"],
            rebuild=dict(rebuild), text_set=text_set, plugin=plugin,
            plugin_version=plugins.plugin_versions.get(plugin, ""), dataset=self.dataset, fold=self.fold,
            seed=self.seed, config=self.config, config_hash=config_hash(self.config), dferbench_version=__version__)
        weights, _ = save_checkpoint(self.unit_file("checkpoint.safetensors"), network, info)
        self.unit_file("checkpoint.json")
        return weights


@dataclass
class Monitor:
    """What a training method reports and how its checkpoint is selected.

    With ``selection == "best_on_test"`` the harness passes the test clips as
    ``test_clips``: the method evaluates after each epoch and keeps the weights of the
    epoch with the best test WAR (the paper's protocol). With ``last_epoch`` it keeps
    the final weights and never sees the test clips while training.

    The runner also says where the unit's training reports and saves itself (see
    :func:`dferbench.run.engine.train_module`, which reads these fields): one
    ``train_module`` call per monitor, since its state file is that training's.
    """

    selection: str
    test_clips: ClipSet | None = None
    history: list[dict[str, Any]] = field(default_factory=list)
    progress: bool = False
    # Filled by the runner; the defaults (a direct caller's) keep nothing on disk and print nothing.
    unit: str = ""  # "dferclip on synthetic fold 1 seed 1", for messages
    echo: Callable[[str], None] | None = None  # one line per epoch, resume notes
    history_path: Path | None = None  # per-epoch rows as JSON lines, written as they happen
    state_path: Path | None = None  # resumable training state, rewritten after every epoch
    tensorboard_dir: Path | None = None  # TensorBoard event files
    config_hash: str = ""  # a state saved under another config is not resumed
    keep_state: bool = False  # keep the state file when the unit has finished

    def log(self, **row: Any) -> None:
        self.history.append(row)

    def note(self, message: str) -> None:
        if self.echo is not None:
            self.echo(message)

    def finished(self) -> None:
        """The unit's result is saved: its training state is no longer needed."""
        if self.state_path is not None and not self.keep_state:
            self.state_path.unlink(missing_ok=True)


class Method(Protocol):
    """A DFER method: trains on clips (or not) and scores clips per class."""

    def fit(self, train: ClipSet, monitor: Monitor) -> dict[str, Any]:
        """Train on ``train``; return facts to record (e.g. the chosen C, epochs run)."""
        ...

    def predict(self, clips: ClipSet) -> np.ndarray:
        """Return float logits ``[len(clips), n_classes]`` in the order of ``clips``."""
        ...


def require_training_clips(train: ClipSet) -> None:
    """Stop a method that trains, in one line, when the fold has no training clips."""
    if len(train) == 0:
        raise DferbenchError(
            f"{train.dataset}: the train split of this fold has no clips (an evaluation-only set, or every "
            "training clip skipped as bad), and this model trains; use a zero-shot model or give the "
            "dataset a train split"
        )
