"""Result files: one JSON per unit plus its per-clip predictions, written atomically."""

from __future__ import annotations

import csv
import io
import json
import os
import platform
import re
import subprocess
from dataclasses import dataclass
from functools import cache
from importlib import metadata
from pathlib import Path
from typing import Any, Iterator, Mapping

import numpy as np

from dferbench.files import replacing

SCHEMA_VERSION = 1


@dataclass(frozen=True)
class UnitKey:
    """One unit of work: a model variant on one fold of a dataset with one seed, under
    one checkpoint-selection policy (both policies' results can live side by side).
    ``protocol_dir`` is the folder of a protocol other than the standard one below the
    run's (``robustness/blur-3``, ``transfer-from-dfew``): such units never share a path
    with a plain run's."""

    run_name: str
    dataset: str
    fold: int
    seed: int
    selection: str = "last_epoch"
    protocol_dir: str = ""

    def path(self, output: Path) -> Path:
        slug = re.sub(r"[^A-Za-z0-9._+-]+", "-", self.run_name).strip("-")
        if self.selection != "last_epoch":
            slug += f"@{self.selection}"
        folder = Path(output) / self.dataset / slug
        return (folder / self.protocol_dir if self.protocol_dir else folder) / f"fold{self.fold}-seed{self.seed}.json"


def write_atomic(path: Path, text: str) -> None:
    """Write ``text`` so that ``path`` is either absent, old, or complete, never partial."""
    with replacing(path) as tmp, open(tmp, "w") as f:
        f.write(text)
        f.flush()
        os.fsync(f.fileno())


def predictions_csv(clip_ids: list[str], labels: np.ndarray, logits: np.ndarray, classes: list[str]) -> str:
    """One row per test clip: ``clip_id, label, prediction`` (class ids), ``logit_<class>``
    for each class (``logits`` is ``[N, C]``), then ``label_name, prediction_name`` (the
    class names; last, so readers of the older columns by position still work)."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(["clip_id", "label", "prediction", *[f"logit_{c}" for c in classes], "label_name",
                     "prediction_name"])
    for clip_id, label, row in zip(clip_ids, labels, logits):
        predicted = int(row.argmax())
        writer.writerow([clip_id, int(label), predicted, *[f"{v:.6g}" for v in row], classes[int(label)],
                         classes[predicted]])
    return out.getvalue()


def save_unit(path: Path, result: dict[str, Any], predictions: str) -> None:
    """Predictions first, the JSON last: a JSON on disk means the unit is complete."""
    write_atomic(path.with_suffix(".predictions.csv"), predictions)
    write_atomic(path, json.dumps(result, indent=1, sort_keys=False) + "\n")


def load_result(path: Path) -> dict[str, Any] | None:
    try:
        return json.loads(path.read_text())
    except (OSError, json.JSONDecodeError):
        return None


STANDARD = "standard"
"""The protocol of a result without a ``protocol`` key: train and test on one dataset's fold, clean."""

PROTOCOL_GLOBS = {STANDARD: "*", "robustness": "*/robustness/*", "transfer": "*/transfer-from-*"}
"""Where each protocol's results lie below a dataset's folder: its folders of ``foldK-seedS.json``."""


def protocol_folder(result: Mapping[str, Any]) -> str:
    """The folder below its run's of a result (``""`` for the standard protocol), from the
    keys that make its protocol (``protocol``, ``corruption``/``severity``, ``train_dataset``/``train_fold``)."""
    protocol = result.get("protocol", STANDARD)
    if protocol == "robustness":
        return f"robustness/{result['corruption']}-{result['severity']}"
    if protocol == "transfer":
        fold = result["train_fold"]
        return f"transfer-from-{result['train_dataset']}" + ("" if fold == "same" else f"-{fold}" if fold == "all"
                                                               else f"-fold{fold}")
    return ""


def iter_results(root: Path, dataset: str | None = None, *,
                 protocol: str | None = STANDARD) -> Iterator[dict[str, Any]]:
    """The unit results under ``root`` (or ``root/dataset``) of ``protocol`` (``robustness``,
    ``transfer``; None: every protocol), each with ``_path``."""
    base = Path(root) / dataset if dataset else Path(root)
    for path in sorted(base.rglob("fold*-seed*.json")):
        result = load_result(path)
        if protocol is not None and result and result.get("protocol", STANDARD) != protocol:
            continue
        if result and result.get("schema") == SCHEMA_VERSION:
            result["_path"] = str(path)
            yield result


@cache
def versions() -> dict[str, str]:
    found = {"python": platform.python_version()}
    for dist in ("dferbench", "torch", "open_clip_torch", "numpy", "scikit-learn"):
        try:
            found[dist] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            found[dist] = "not installed"
    return found


@cache
def git_commit() -> str | None:
    here = Path(__file__).resolve().parent
    try:
        commit = subprocess.run(["git", "rev-parse", "HEAD"], cwd=here, capture_output=True, text=True, timeout=5)
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=here,
                               capture_output=True, text=True, timeout=5)
    except (OSError, subprocess.SubprocessError):
        return None
    if commit.returncode != 0:
        return None
    return commit.stdout.strip() + ("-dirty" if dirty.stdout.strip() else "")
