"""Result files: one JSON per unit plus its per-clip predictions, written atomically."""

from __future__ import annotations

import csv
import io
import json
import math
import os
import platform
import re
import subprocess
from dataclasses import dataclass
from functools import cache
from importlib import metadata
from pathlib import Path
from typing import Any, Callable, Iterator, Mapping

import numpy as np

from dferbench.errors import DferbenchError
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


UNIT_FILE = re.compile(r"fold(\d+)-seed(\d+)\.json")
"""The name of a unit's result file; its other files share the stem (``.predictions.csv``...)."""


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def validate_result(obj: Any, classes: list[str] | None = None) -> list[str]:
    """What is wrong with a unit's result (a parsed JSON), one phrase per problem; [] if valid.

    Checks the schema version, the types of the keys leaderboards read, UAR/WAR in
    [0, 100], the confusion matrix (C x C non-negative integers, C = ``len(classes)``,
    summing to ``n_test``). With ``classes``, the result must be of exactly those
    classes (the dataset's)."""
    if not isinstance(obj, dict):
        return [f"the top level is {type(obj).__name__}, not an object"]
    if obj.get("schema") != SCHEMA_VERSION:
        return [f"unknown schema {obj.get('schema')!r} (this dferbench reads schema {SCHEMA_VERSION})"]
    problems = []
    for key in ("run_name", "model", "dataset", "selection", "config_hash"):
        if not isinstance(obj.get(key), str) or not obj[key]:
            problems.append(f"{key} must be a non-empty string, got {obj.get(key)!r}")
    for key in ("variant", "normalize", "family", "precision"):
        required = key in ("variant", "normalize")
        if (required or key in obj) and not isinstance(obj.get(key), str):
            problems.append(f"{key} must be a string, got {obj.get(key)!r}")
    for key, low in (("fold", 1), ("seed", 0), ("n_test", 1), ("num_frames", 1), ("image_size", 1)):
        if not _is_int(obj.get(key)) or obj[key] < low:
            problems.append(f"{key} must be an integer >= {low}, got {obj.get(key)!r}")
    if "config" in obj and not isinstance(obj["config"], dict):
        problems.append(f"config must be an object, got {type(obj['config']).__name__}")
    for key in ("uar", "war"):
        if not _is_number(obj.get(key)) or not 0 <= obj[key] <= 100:
            problems.append(f"{key} must be a number in [0, 100], got {obj.get(key)!r}")
    names = obj.get("classes")
    if (not isinstance(names, list) or not names or not all(isinstance(c, str) and c for c in names)
            or len(set(names)) != len(names)):
        return problems + [f"classes must be a non-empty list of distinct class names, got {names!r}"]
    if classes is not None and names != list(classes):
        problems.append(f"its classes {names} are not the dataset's {list(classes)}")
    return problems + _confusion_problems(obj, len(names))


def _confusion_problems(obj: dict[str, Any], n: int) -> list[str]:
    cm = obj.get("confusion")
    if (not isinstance(cm, list) or len(cm) != n
            or not all(isinstance(row, list) and len(row) == n and all(_is_int(v) and v >= 0 for v in row)
                       for row in cm)):
        return [f"confusion must be a {n} x {n} matrix of non-negative integers (one row per class)"]
    total = sum(map(sum, cm))
    if _is_int(obj.get("n_test")) and total != obj["n_test"]:
        return [f"the confusion matrix counts {total} clips but n_test is {obj['n_test']}"]
    return []


def read_result(path: Path, classes: list[str] | None = None) -> tuple[dict[str, Any] | None, list[str]]:
    """A unit's result file and its problems (see :func:`validate_result`); its name must
    also be its own fold and seed's (``foldK-seedS.json``)."""
    try:
        obj = json.loads(Path(path).read_text(encoding="utf-8"))
    except FileNotFoundError:
        return None, ["no such file"]
    except (OSError, UnicodeDecodeError) as exc:
        return None, [f"cannot be read ({exc})"]
    except json.JSONDecodeError as exc:
        return None, ["empty file" if not exc.doc.strip() else f"not valid JSON ({exc.msg} at line {exc.lineno})"]
    problems = validate_result(obj, classes)
    name = f"fold{obj['fold']}-seed{obj['seed']}.json" if not problems else Path(path).name
    if Path(path).name != name:
        problems.append(f"it holds fold {obj['fold']} seed {obj['seed']}, whose file is {name}")
    return (obj if not problems else None), problems


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


def load_result(path: Path) -> dict[str, Any] | None:
    """The valid result at ``path``, or None (missing or invalid)."""
    return read_result(path)[0]


def move_aside(path: Path) -> Path:
    """Rename an invalid result to ``<name>.invalid`` (replacing an older one); return the new path."""
    aside = path.with_name(path.name + ".invalid")
    os.replace(path, aside)
    return aside


def iter_results(root: Path, dataset: str | None = None, *,
                 on_invalid: Callable[[Path, list[str]], None] | None = None,
                 protocol: str | None = STANDARD) -> Iterator[dict[str, Any]]:
    """The valid unit results under ``root`` (or ``root/dataset``) of ``protocol``
    (``robustness``, ``transfer``; None: every protocol), each with ``_path``.

    An invalid file is passed to ``on_invalid(path, problems)``; without one it stops the
    iteration with a :class:`DferbenchError` naming the file and its first problem."""
    base = Path(root) / dataset if dataset else Path(root)
    for path in sorted(base.rglob("fold*-seed*.json")):
        if not UNIT_FILE.fullmatch(path.name) or any(p.startswith(".") for p in path.relative_to(root).parts):
            continue
        result, problems = read_result(path)
        folder = path.relative_to(root).parts[0]
        if not problems and result["dataset"] != folder:
            problems = [f"it holds a result of dataset {result['dataset']!r}, not of {folder!r}"]
        if problems:
            if on_invalid is None:
                more = f" (and {len(problems) - 1} more problems)" if len(problems) > 1 else ""
                raise DferbenchError(f"invalid result {path}: {problems[0]}{more}; rerun its unit "
                                     "(`dferbench run` moves it aside) or delete it")
            on_invalid(path, problems)
            continue
        if protocol is not None and result.get("protocol", STANDARD) != protocol:
            continue
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
