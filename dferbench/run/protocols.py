"""Evaluation protocols: which clips a unit trains and tests on, and what its result adds.

The runner runs every protocol alike: one result file per (fold, seed) unit, skipped on a
rerun with the same config hash, its predictions next to it. A protocol only chooses the
unit's clips, the classes scored, and what joins the hash, the path and the record:

* :class:`Standard`: the papers' protocol, the train and test splits of one fold;
* :class:`dferbench.run.robustness.CorruptedTest`: the same model, its test clips read
  through one corruption at one severity;
* :class:`dferbench.run.transfer.Transfer`: trained on another dataset, scored on the
  classes both datasets share.
"""

from __future__ import annotations

import hashlib
import json
from typing import TYPE_CHECKING, Any, Callable, Protocol, Sequence

import numpy as np

from dferbench.data.records import ClipRecord, DFERDataset, FrameReader

if TYPE_CHECKING:
    from dferbench.data.loader import ClipSet


class MakeClipSet(Protocol):
    """The runner's ClipSet factory: the run's sampling, resolution, normalisation and
    workers; ``name`` (the dataset's), ``reader``, ``augmentation`` and ``pipeline``
    default to the run's dataset, its reader, the run's augmentation and ``data.pipeline``."""

    def __call__(self, records: list[ClipRecord], *, name: str | None = None, reader: FrameReader | None = None,
                 augmentation: str | None = None, pipeline: str | None = None) -> ClipSet: ...


class Standard:
    """Train on ``split(fold, "train")``, test on ``split(fold, "test")``, score every class."""

    name = "standard"
    protocol_dir = ""
    """The folder of this protocol's results below the run's ("" = the run's own)."""

    classes: list[str]
    """The classes results score, in label order (set by :meth:`prepare`)."""
    model_classes: list[str]
    """The classes the model is built for (and its logits' columns)."""

    def hash_parts(self) -> dict[str, Any]:
        """What, besides the config, changes this protocol's numbers (joins the config hash)."""
        return {}

    def hash(self, config_hash: str) -> str:
        parts = self.hash_parts()
        if not parts:
            return config_hash
        blob = json.dumps({"config": config_hash, "protocol": self.name, **parts}, sort_keys=True,
                          separators=(",", ":"))
        return hashlib.sha256(blob.encode()).hexdigest()[:16]

    def record(self) -> dict[str, Any]:
        """Keys added to each result (a protocol other than the standard one sets ``protocol``)."""
        return {}

    def prepare(self, dataset: DFERDataset, folds: Sequence[int], datasets: dict[str, Any],
                echo: Callable[[str], None]) -> None:
        """Called once per run, before its units, with the dataset tested on; raises
        :class:`~dferbench.errors.DferbenchError` for a run that cannot work."""
        self.classes = list(dataset.classes)
        self.model_classes = list(dataset.classes)

    def clipsets(self, dataset: DFERDataset, fold: int, make: MakeClipSet) -> tuple[ClipSet, ClipSet]:
        """The unit's ``(train, test)`` clips; test labels index :attr:`classes`."""
        return make(dataset.split(fold, "train")), make(dataset.split(fold, "test"))

    def scores(self, logits: np.ndarray) -> np.ndarray:
        """The model's logits ``[N, len(model_classes)]`` as scores ``[N, len(classes)]``."""
        return logits
