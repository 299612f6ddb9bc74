"""The robustness leaderboard of one dataset, from robustness result records only: UAR
and WAR per corruption and severity, the mean corruption error (mCE) after ImageNet-C,
and a plot of UAR against severity (see :mod:`dferbench.run.robustness` for the protocol).

A row is a run name. Its units are those of its clean cell; a corruption is shown (and
counts in the mCE) only when each of its cells has every one of those units, so every
number of a row compares one set of trained models.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from dferbench.data.corruptions import CLEAN, CORRUPTIONS, SEVERITIES, mean_corruption_error
from dferbench.report import inputs

BASELINE = "zeroshot-clip[text=descriptors]"
"""The row the normalised mCE divides by, ImageNet-C's AlexNet: the zero-shot CLIP with
descriptor prompts never trains on the dataset, so it degrades only as CLIP does."""

PROTOCOL = "robustness"

MIN_BASELINE_DROP = 3.0
"""Points of UAR the baseline must lose to a corruption (its relative CE) for a normalised
relative CE to be shown: dividing by a baseline that hardly degrades gives ratios in the
hundreds, or negative ones, that say nothing about the row. On the committed synthetic
table a cell's 95% interval is about +-6 points, so a smaller drop is not told from none."""


@dataclass
class Row:
    """One run name's robustness cells: ``cells[(corruption, severity)]`` = its records."""

    run_name: str
    cells: dict[tuple[str, int], list[dict[str, Any]]] = field(default_factory=dict)

    @property
    def units(self) -> list[tuple[int, int]]:
        return sorted((r["fold"], r["seed"]) for r in self.cells.get((CLEAN, 0), []))

    def has(self, corruption: str, severity: int) -> bool:
        """Whether the cell holds every unit of the clean cell."""
        units = set(self.units)
        return bool(units) and units <= {(r["fold"], r["seed"]) for r in self.cells.get((corruption, severity), [])}

    def severities(self, corruption: str) -> list[int]:
        return [s for s in SEVERITIES if self.has(corruption, s)]

    def complete(self) -> list[str]:
        """The corruptions with all five severities (those the mCE counts)."""
        return [c for c in CORRUPTIONS if len(self.severities(c)) == len(SEVERITIES)]

    def shown(self) -> list[str]:
        """The corruptions with at least one severity."""
        return [c for c in CORRUPTIONS if self.severities(c)]

    def mean(self, corruption: str, severity: int, metric: str = "uar") -> float:
        units = set(self.units)
        return float(np.mean([r[metric] for r in self.cells[corruption, severity] if (r["fold"], r["seed"]) in units]))

    def records(self, names: list[str]) -> list[dict[str, Any]]:
        """The records of the clean cell and of the corruptions ``names``, limited to the clean units."""
        units = set(self.units)
        return [r for (c, _), recs in self.cells.items() if c == CLEAN or c in names
                for r in recs if (r["fold"], r["seed"]) in units]


def rows(results_dir: Path, dataset: str, skip_invalid: bool = False) -> list[Row]:
    """The robustness rows of ``dataset`` under ``results_dir``, by clean UAR (best first).
    Invalid result files raise :class:`~dferbench.report.inputs.InvalidResults` unless
    ``skip_invalid``."""
    found: dict[str, Row] = {}
    for result in inputs.checked_results(results_dir, dataset, skip_invalid, PROTOCOL)[0]:
        row = found.setdefault(result["run_name"], Row(result["run_name"]))
        row.cells.setdefault((result["corruption"], int(result["severity"])), []).append(result)
    out = [r for r in found.values() if r.units]
    out.sort(key=lambda r: (-r.mean(CLEAN, 0), r.run_name))
    return out


def _normalised(row: Row, base: Row | None, names: list[str]) -> dict[str, Any]:
    """The mCE of ``row`` normalised by ``base`` over the corruptions both have complete;
    relative CEs only where ``base`` lost at least :data:`MIN_BASELINE_DROP` points."""
    shared = [c for c in names if base is not None and c in base.complete()]
    if not shared:
        return {}
    out = mean_corruption_error(row.records(shared), baseline=base.records(shared))
    drops = mean_corruption_error(base.records(shared))["relative_ce"]
    out["relative_ce"] = {c: v for c, v in out["relative_ce"].items() if drops[c] >= MIN_BASELINE_DROP}
    out["relative_mce"] = float(np.mean(list(out["relative_ce"].values()))) if out["relative_ce"] else None
    return out


def _interval(records: list[dict[str, Any]], n_resamples: int) -> str:
    from dferbench.report.compare import read_unit
    from dferbench.report.stats import row_interval

    low, high = row_interval([read_unit(r) for r in records], "uar", n_resamples=n_resamples)
    return f" [{low:.0f}–{high:.0f}]"


def _num(value: float | None, digits: int = 1) -> str:
    return "-" if value is None or not np.isfinite(value) else f"{value:.{digits}f}"


def render(dataset: str, results_dir: Path, *, baseline: str = BASELINE, image: str | None = None,
           n_resamples: int = 1000, skip_invalid: bool = False) -> tuple[str, list[Row]]:
    """Markdown of ``dataset``'s robustness rows; ``image``: the plot's path relative to the
    Markdown file; ``n_resamples`` = 0 leaves the intervals out."""
    from tabulate import tabulate

    found = rows(Path(results_dir), dataset, skip_invalid)
    by_name = {r.run_name: r for r in found}
    base = by_name.get(baseline)
    lines = [
        f"# Robustness: {dataset}",
        "",
        "Generated by `dferbench leaderboard` from `dferbench robustness` results; do not edit by hand. "
        "Each unit (fold, seed) trains once on clean clips and is tested on its clean test split and under "
        "each corruption of `dferbench.data.corruptions` at severities 1-5, the corrupted clips drawn "
        "from one corruption seed for every model. UAR and WAR in %, the mean over the row's units.",
        "",
        "mCE after ImageNet-C (Hendrycks & Dietterich, 2019), over UAR: the corruption error of a "
        "corruption is the mean over its five severities of E = 100 - UAR; the relative CE is the mean "
        "of E - E(clean), the points lost to the corruption. mCE and relative mCE average them over the "
        "corruptions. Normalised (baseline = 100): each corruption's errors summed over severities "
        f"divided by the baseline row's, `{baseline}`"
        + (", before averaging." if base else ", absent here: no normalised columns.")
        + f" A normalised relative CE is left out (`-`) where the baseline lost less than {MIN_BASELINE_DROP:.0f} "
        "points of UAR to the corruption (a ratio to nearly nothing); the normalised relative mCE averages the "
        "others, their count in brackets. Lower is better for all four.",
        "",
    ]
    if not found:
        return "\n".join(lines + [f"No robustness results yet: run `dferbench robustness --model M --dataset "
                                  f"{dataset}`.", ""]), found
    if image:
        lines += [f"![UAR against severity per corruption]({image})", ""]
    summary = []
    for row in found:
        names = row.complete()
        cells = [row.mean(c, s) for c in names for s in SEVERITIES]
        ce = mean_corruption_error(row.records(names)) if names else None
        normed = _normalised(row, base, names)
        counted = f" ({len(normed['relative_ce'])})" if normed and normed["relative_mce"] is not None else ""
        summary.append([row.run_name, len(row.units), _num(row.mean(CLEAN, 0)), _num(row.mean(CLEAN, 0, "war")),
                        f"{len(names)}/{len(CORRUPTIONS)}", _num(np.mean(cells) if cells else None),
                        _num(ce and ce["mce"]), _num(ce and ce["relative_mce"]),
                        _num(normed.get("mce")), _num(normed.get("relative_mce")) + counted])
    lines += ["## Summary", "",
              tabulate(summary, headers=["method", "units", "clean UAR", "clean WAR", "corruptions",
                                         "corrupted UAR", "mCE", "relative mCE", "mCE (baseline = 100)",
                                         "relative mCE (baseline = 100)"],
                       tablefmt="pipe", disable_numparse=True), ""]
    lines += ["`corrupted UAR`: the mean over the complete corruptions' 5 severities; in the tables below, "
              "`mean` is over the severities shown. "
              + ("Brackets: 95% stratified bootstrap interval over the test clips "
                 "(`dferbench.report.stats.row_interval`): how far a number could move on another draw of "
                 "test clips for the same trained models, not over retraining." if n_resamples else ""), ""]
    for row in found:
        lines += _row_tables(row, base, n_resamples)
    return "\n".join(lines), found


def _row_tables(row: Row, base: Row | None, n_resamples: int) -> list[str]:
    from tabulate import tabulate

    names = row.complete()
    folds = sorted({f for f, _ in row.units})
    seeds = sorted({s for _, s in row.units})
    clean = row.records([])
    head = [f"## {row.run_name}", "",
            f"Folds {', '.join(map(str, folds))}; seeds {', '.join(map(str, seeds))}. Clean: UAR "
            f"{row.mean(CLEAN, 0):.1f}{_interval(clean, n_resamples) if n_resamples else ''}, WAR "
            f"{row.mean(CLEAN, 0, 'war'):.1f}.", ""]
    if not row.shown():
        return head + ["No corrupted cell holds every unit yet.", ""]
    ce = mean_corruption_error(row.records(names)) if names else {"relative_ce": {}}
    normed = _normalised(row, base, names)
    uar, war = [], []
    for c in row.shown():
        present = row.severities(c)
        recs = {s: [r for r in row.records([c]) if r["corruption"] == c and r["severity"] == s] for s in present}
        uar.append([c] + [f"{row.mean(c, s):.1f}" + (_interval(recs[s], n_resamples) if n_resamples else "")
                          if s in present else "-" for s in SEVERITIES]
                   + [_num(np.mean([row.mean(c, s) for s in present])), _num(ce["relative_ce"].get(c)),
                      _num(normed.get("ce", {}).get(c)), _num(normed.get("relative_ce", {}).get(c))])
        war.append([c] + [f"{row.mean(c, s, 'war'):.1f}" if s in present else "-" for s in SEVERITIES]
                   + [_num(np.mean([row.mean(c, s, "war") for s in present]))])
    severity_heads = [f"UAR s{s}" for s in SEVERITIES]
    return head + [
        tabulate(uar, headers=["corruption", *severity_heads, "mean", "relative CE", "CE (baseline = 100)",
                               "relative CE (baseline = 100)"], tablefmt="pipe", disable_numparse=True), "",
        tabulate(war, headers=["corruption", *[f"WAR s{s}" for s in SEVERITIES], "mean"], tablefmt="pipe",
                 disable_numparse=True), "",
    ]


def plot(found: list[Row], path: Path, dataset: str) -> None:
    """UAR against severity (0 = clean) for each corruption, one line per row."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = [c for c in CORRUPTIONS if any(c in row.shown() for row in found)]
    cols = 4
    grid_rows = len(names) // cols + 1  # a free panel for the legend
    fig, axes = plt.subplots(grid_rows, cols, figsize=(11, 2.3 * grid_rows), dpi=80, sharex=True, sharey=True,
                             squeeze=False)
    axes = axes.ravel()
    chance = 100.0 / len(found[0].cells[CLEAN, 0][0]["classes"]) if found else None
    lines = {}
    for ax, name in zip(axes, names):
        for k, row in enumerate(found):
            present = row.severities(name)
            if present:
                values = [row.mean(CLEAN, 0)] + [row.mean(name, s) for s in present]
                (lines[row.run_name],) = ax.plot([0, *present], values, marker="o", markersize=3, color=f"C{k}")
        if chance is not None:
            ax.axhline(chance, color="0.6", linestyle=":", linewidth=1)
        ax.set_title(name, fontsize=9)
        ax.grid(alpha=0.3)
        ax.tick_params(labelbottom=True, labelsize=7)
    for ax in axes[len(names):]:
        ax.axis("off")
    axes[len(names)].legend([*lines.values(), plt.Line2D([], [], color="0.6", linestyle=":")],
                            [*lines, f"chance ({chance:.1f})" if chance else "chance"], loc="center", fontsize=8,
                            frameon=False)
    fig.supxlabel("severity (0 = clean)", fontsize=9)
    fig.supylabel("UAR (%)", fontsize=9)
    fig.suptitle(f"Robustness on {dataset}: UAR against corruption severity", fontsize=10)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, metadata={"Software": None})
    plt.close(fig)
