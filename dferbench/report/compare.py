"""Compare leaderboard rows from result files: paired tests of their units, and the text to print.

A row is every unit of one run name under one checkpoint-selection policy on one dataset.
Its name is the run name (the ``run_name`` field of the result JSON) for ``last_epoch`` and
``run_name@selection`` otherwise, as in the result folders. A unit's clips, labels and
predictions are read from the ``foldK-seedS.predictions.csv`` next to its JSON (columns
``clip_id``, ``label``, ``prediction``: the argmax of the logits).
"""

from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from dferbench.errors import DferbenchError, unknown_name
from dferbench.report import stats
from dferbench.run.results import iter_results


def row_name(run_name: str, selection: str = "last_epoch") -> str:
    """``run_name`` for the default selection, ``run_name@selection`` otherwise."""
    return run_name if selection == "last_epoch" else f"{run_name}@{selection}"


def index_rows(results_dir: Path, dataset: str) -> dict[str, list[dict[str, Any]]]:
    """Row name -> the unit result dicts of that row (``_path`` says where each JSON is)."""
    root = Path(results_dir)
    if not (root / dataset).is_dir():
        known = sorted(p.name for p in root.iterdir() if p.is_dir()) if root.is_dir() else []
        raise DferbenchError(f"{root}: {unknown_name('dataset', dataset, known)}")
    rows: dict[str, list[dict[str, Any]]] = {}
    for result in iter_results(root, dataset):
        rows.setdefault(row_name(result["run_name"], result.get("selection", "last_epoch")), []).append(result)
    return rows


def read_unit(result: dict[str, Any]) -> stats.Unit:
    """The :class:`~dferbench.report.stats.Unit` of one result dict, from its predictions CSV."""
    json_path = Path(result["_path"])
    path = json_path.with_suffix(".predictions.csv")
    if not path.is_file():
        raise DferbenchError(
            f"{path}: missing, so the unit {json_path.name} of {result['run_name']!r} cannot be resampled; rerun it "
            f"(dferbench run -m {result['model']} -d {result['dataset']} --folds {result['fold']} "
            f"--seeds {result['seed']} --rerun, with the run's settings)")
    clip_ids, labels, predictions = [], [], []
    with path.open(newline="") as f:
        reader = csv.DictReader(f)
        missing = {"clip_id", "label", "prediction"} - set(reader.fieldnames or [])
        if missing:
            raise DferbenchError(f"{path}: no column {', '.join(sorted(missing))}; a predictions file has "
                                 f"clip_id,label,prediction,logit_<class>...")
        for line, record in enumerate(reader, start=2):
            try:
                labels.append(int(record["label"]))
                predictions.append(int(record["prediction"]))
            except (TypeError, ValueError):
                raise DferbenchError(f"{path} line {line}: label and prediction must be class ids, got "
                                     f"{record['label']!r} and {record['prediction']!r}") from None
            clip_ids.append(record["clip_id"])
    if not clip_ids:
        raise DferbenchError(f"{path}: no predictions")
    unit = stats.Unit(int(result["fold"]), int(result["seed"]), np.array(labels), np.array(predictions),
                      tuple(clip_ids))
    recomputed = stats.score(unit.y_true, unit.y_pred, "uar")
    if abs(recomputed - float(result["uar"])) > 0.01:
        raise DferbenchError(f"{path}: these predictions give UAR {recomputed:.3f}, {json_path.name} says "
                             f"{float(result['uar']):.3f}; the two files are not from the same run: rerun the unit")
    return unit


def load_rows(results_dir: Path, dataset: str, names: list[str] | None = None) -> dict[str, list[stats.Unit]]:
    """Row name -> its units, for ``names`` (default: every row of ``dataset``), in that order."""
    index = index_rows(results_dir, dataset)
    for name in names or []:
        if name not in index:
            raise DferbenchError(f"{dataset}: {unknown_name('run name', name, index)}")
    return {name: [read_unit(r) for r in index[name]] for name in (names or sorted(index))}


@dataclass(frozen=True)
class FoldDifference:
    """A against B on the units of one fold (their mean over the fold's seeds)."""

    fold: int
    seeds: list[int]
    clips: int
    a: float
    b: float
    difference: float
    ci: tuple[float, float]


@dataclass(frozen=True)
class Comparison:
    """What ``dferbench compare A B`` reports; every score in percent, differences in points."""

    dataset: str
    metric: str
    a: str
    b: str
    test: stats.PairedTest  #: A minus B over every unit
    interval_a: tuple[float, float]
    interval_b: tuple[float, float]
    folds: list[FoldDifference]
    n_units: int
    n_clips: int
    confidence: float


@dataclass(frozen=True)
class AgainstAll:
    """What ``dferbench compare A --against-all`` reports: A minus every other row."""

    dataset: str
    metric: str
    reference: str
    score: float
    interval: tuple[float, float]
    versus: list[stats.Versus]
    confidence: float


def compare(results_dir: Path, a: str, b: str, dataset: str, metric: str = "uar", n_resamples: int = 1000,
            confidence: float = 0.95, seed: int = 0) -> Comparison:
    """Row ``a`` against row ``b`` on ``dataset``: units matched by (fold, seed) and clip id."""
    if a == b:
        raise DferbenchError(f"compare needs two different rows, got {a!r} twice")
    rows = load_rows(results_dir, dataset, [a, b])
    test = stats.paired_row_test(rows[a], rows[b], metric, n_resamples, confidence, seed)
    folds = []
    for fold in sorted({u.fold for u in rows[a]}):
        units_a = [u for u in rows[a] if u.fold == fold]
        units_b = [u for u in rows[b] if u.fold == fold]
        per_fold = stats.paired_row_test(units_a, units_b, metric, n_resamples, confidence, seed)
        folds.append(FoldDifference(fold, sorted(u.seed for u in units_a), len(units_a[0].y_true), per_fold.a,
                                    per_fold.b, per_fold.difference, per_fold.ci))
    return Comparison(dataset, metric, a, b, test, stats.row_interval(rows[a], metric, n_resamples, confidence, seed),
                      stats.row_interval(rows[b], metric, n_resamples, confidence, seed), folds, len(rows[a]),
                      sum(f.clips for f in folds), confidence)


def compare_against_all(results_dir: Path, a: str, dataset: str, metric: str = "uar", n_resamples: int = 1000,
                        confidence: float = 0.95, seed: int = 0) -> AgainstAll:
    """Row ``a`` against every other row of ``dataset``, Holm-adjusted over the tests made;
    rows whose units cannot be paired with ``a``'s are listed as skipped, with the reason."""
    rows = load_rows(results_dir, dataset)
    if a not in rows:
        raise DferbenchError(f"{dataset}: {unknown_name('run name', a, rows)}")
    if len(rows) < 2:
        raise DferbenchError(f"{dataset}: {a!r} is the only row; nothing to compare it with")
    return AgainstAll(dataset, metric, a, float(np.mean([stats.score(u.y_true, u.y_pred, metric) for u in rows[a]])),
                      stats.row_interval(rows[a], metric, n_resamples, confidence, seed),
                      stats.against_all(rows, a, metric, n_resamples, confidence, seed), confidence)


def _signed(value: float) -> str:
    return f"{value:+.2f}"


def _interval(ci: tuple[float, float], signed: bool = False) -> str:
    text = _signed if signed else (lambda v: f"{v:.2f}")
    return f"[{text(ci[0])}, {text(ci[1])}]"


def _p(p: float, n_resamples: int) -> str:
    smallest = 1 / (1 + n_resamples)
    return f"<= {smallest:.4f}" if p <= smallest * (1 + 1e-9) else f"{p:.4f}"


def format_comparison(c: Comparison, alpha: float = 0.05) -> str:
    """The text ``dferbench compare A B`` prints: both scores with intervals, the difference,
    its interval and p-value, a verdict at ``alpha``, and one line per fold."""
    from tabulate import tabulate

    t, pct, name = c.test, f"{c.confidence:.0%}", c.metric.upper()
    seeds = sorted({s for f in c.folds for s in f.seeds})
    if t.p_value < alpha:
        verdict = f"{c.a if t.difference > 0 else c.b} is better (p < {alpha:g})"
    else:
        verdict = f"no significant difference at the {alpha:g} level"
    lines = [
        f"{c.a} vs {c.b} on {c.dataset}: {name} (%), {c.n_units} units ({len(c.folds)} folds x seeds "
        f"{','.join(map(str, seeds))}), {c.n_clips} test clips",
        f"  {c.a}: {t.a:.2f}  {pct} interval {_interval(c.interval_a)}",
        f"  {c.b}: {t.b:.2f}  {pct} interval {_interval(c.interval_b)}",
        f"  difference ({c.a} - {c.b}): {_signed(t.difference)} points, {pct} interval "
        f"{_interval(t.ci, signed=True)}, p = {_p(t.p_value, t.n_resamples)}: {verdict}",
        f"  ({t.method})",
        "",
        tabulate([[f.fold, ",".join(map(str, f.seeds)), f.clips, f"{f.a:.2f}", f"{f.b:.2f}", _signed(f.difference),
                   _interval(f.ci, signed=True)] for f in c.folds],
                 headers=["fold", "seeds", "clips", c.a, c.b, "difference", f"{pct} interval"],
                 tablefmt="simple", disable_numparse=True),
    ]
    return "\n".join(lines)


def format_against_all(r: AgainstAll, alpha: float = 0.05) -> str:
    """The text ``dferbench compare A --against-all`` prints: one line per other row with the
    difference (A minus the row), its interval, the p-value and the Holm-adjusted p-value."""
    from tabulate import tabulate

    pct, name = f"{r.confidence:.0%}", r.metric.upper()
    table, skipped = [], []
    for v in r.versus:
        if v.test is None:
            skipped.append(f"  {v.name}: skipped, {v.skipped}")
            continue
        t = v.test
        if v.p_holm < alpha:
            verdict = f"{r.reference} better" if t.difference > 0 else f"{r.reference} worse"
        else:
            verdict = "no significant difference"
        table.append([v.name, f"{t.b:.2f}", _signed(t.difference), _interval(t.ci, signed=True),
                      _p(t.p_value, t.n_resamples), _p(v.p_holm, t.n_resamples), verdict])
    table.sort(key=lambda row: -float(row[1]))
    lines = [
        f"{r.reference} against every other row on {r.dataset}: {name} (%); {r.reference} {r.score:.2f}, "
        f"{pct} interval {_interval(r.interval)}",
        f"difference = {r.reference} minus the row; Holm's correction over {len(table)} tests, verdicts at {alpha:g}",
        "",
        tabulate(table, headers=["row", name, "difference", f"{pct} interval", "p", "Holm p", "verdict"],
                 tablefmt="simple", disable_numparse=True),
    ]
    return "\n".join(lines + ([""] + skipped if skipped else []))
