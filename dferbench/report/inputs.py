"""The result files a report is built from: found, read and checked, every bad one named.

A report never drops a unit silently. :func:`read_results` returns the valid results of a
dataset and one :class:`Invalid` (file and problem) for every other result file; the
caller refuses to build (:class:`InvalidResults`) or, when told to skip them, says how many
it skipped. The checks are those of the result schema (types, ranges, a C x C confusion
matrix of counts) plus two a report needs: UAR and WAR agree with the confusion matrix, and
the file lies where its own content says it belongs (so a copied or renamed file cannot
count twice).

The schema part is :func:`dferbench.run.results.validate_result`, the one ``run`` checks
existing results with; :func:`_report_problems` and :func:`_misplaced` are the report's own.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from dferbench.errors import DferbenchError
from dferbench.run.results import PROTOCOL_GLOBS, STANDARD, UNIT_FILE, UnitKey, protocol_folder, validate_result



@dataclass(frozen=True)
class Invalid:
    """A result file that a report cannot use, and why (one line)."""

    path: Path
    problem: str

    def __str__(self) -> str:
        return f"{self.path}: {self.problem}"


class InvalidResults(DferbenchError):
    """Some result files are invalid; the message names each, one per line."""

    def __init__(self, invalid: list[Invalid]):
        self.invalid = invalid
        lines = [f"{len(invalid)} invalid result file{'s' if len(invalid) > 1 else ''}; fix them or move them aside, "
                 f"or pass --skip-invalid to build without them:"]
        super().__init__("\n".join(lines + [f"  {i}" for i in invalid]))


def result_files(results_dir: Path, dataset: str, protocol: str = STANDARD) -> list[Path]:
    """Every unit result of ``dataset`` under ``protocol``, sorted: for the standard one
    ``<results_dir>/<dataset>/<run>/foldK-seedS.json``, for the others in their folders below
    the run's (``robustness/<corruption>-<severity>/``, ``transfer-from-<dataset>.../``); not a
    unit's other files, nor anything in a hidden folder or below those folders."""
    base = Path(results_dir) / dataset
    return sorted(path for path in base.glob(f"{PROTOCOL_GLOBS[protocol]}/fold*-seed*.json")
                  if UNIT_FILE.fullmatch(path.name)
                  and not any(part.startswith(".") for part in path.parent.relative_to(base).parts))


def read_results(results_dir: Path, dataset: str, protocol: str = STANDARD
                 ) -> tuple[list[dict[str, Any]], list[Invalid]]:
    """The valid results of ``dataset`` under ``protocol`` (each with ``_path``) and the
    invalid files, in path order."""
    valid, invalid = [], []
    for path in result_files(results_dir, dataset, protocol):
        result, problem = _load(path)
        problems = [problem] if problem else validate_result(result)
        if not problems and result.get("protocol", STANDARD) != protocol:
            problems = [f"a result of protocol {result.get('protocol', STANDARD)!r} in a folder of {protocol!r}"]
        problems = problems or _report_problems(result, dataset) or _misplaced(result, path, results_dir)
        if problems:
            invalid.append(Invalid(path, "; ".join(problems)))
        else:
            result["_path"] = str(path)
            valid.append(result)
    return valid, invalid


def _load(path: Path) -> tuple[Any, str | None]:
    try:
        text = path.read_bytes().decode("utf-8")
    except OSError as err:
        return None, f"cannot be read ({err.strerror})"
    except UnicodeDecodeError:
        return None, "not UTF-8 text, so not a result file"
    if not text.strip():
        return None, "empty file (a unit that was interrupted while writing? rerun it)"
    try:
        return json.loads(text), None
    except json.JSONDecodeError as err:
        return None, f"not valid JSON ({err.msg} at line {err.lineno} column {err.colno}; truncated?)"


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _report_problems(result: dict[str, Any], dataset: str) -> list[str]:
    """What a report needs beyond the schema: the dataset of the folder, a per-class recall
    the pages can print, and UAR/WAR that are those of the confusion matrix."""
    found = []
    if result["dataset"] != dataset:
        found.append(f"dataset is {result['dataset']!r} but the file is in the folder of {dataset!r}")
    cm, n = result["confusion"], len(result["classes"])
    recall = result.get("per_class_recall")
    if recall is not None and (not isinstance(recall, list) or len(recall) != n
                               or not all(v is None or _is_number(v) for v in recall)):
        found.append(f"per_class_recall must list {n} numbers (or null for an absent class), got {_short(recall)}")
    support = [sum(r) for r in cm]
    if not any(support):
        return found + ["confusion counts no clip"]
    uar = 100 * sum(cm[c][c] / support[c] for c in range(n) if support[c]) / sum(1 for s in support if s)
    war = 100 * sum(cm[c][c] for c in range(n)) / sum(support)
    for key, expected in (("uar", uar), ("war", war)):
        if abs(result[key] - expected) > 0.01:
            found.append(f"{key} {result[key]!r} is not that of its confusion matrix ({expected:.3f})")
    return found


def _misplaced(result: dict[str, Any], path: Path, results_dir: Path) -> list[str]:
    try:
        folder = protocol_folder(result)
    except KeyError as missing:
        return [f"a {result['protocol']} result without {missing}"]
    key = UnitKey(result["run_name"], result["dataset"], result["fold"], result["seed"], result["selection"], folder)
    expected = key.path(results_dir)
    if Path(path).resolve() != expected.resolve():
        return [f"its content (run {key.run_name!r}, fold {key.fold}, seed {key.seed}, selection {key.selection}) "
                f"belongs at {expected}; a copied or renamed result would count twice"]
    return []


def _short(value: Any) -> str:
    text = json.dumps(value)
    return text if len(text) <= 40 else text[:37] + "..."


def checked_results(results_dir: Path, dataset: str, skip_invalid: bool = False, protocol: str = STANDARD
                    ) -> tuple[list[dict[str, Any]], list[Invalid]]:
    """:func:`read_results`, raising :class:`InvalidResults` for invalid files unless ``skip_invalid``."""
    valid, invalid = read_results(results_dir, dataset, protocol)
    if invalid and not skip_invalid:
        raise InvalidResults(invalid)
    return valid, invalid
