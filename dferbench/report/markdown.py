"""The Markdown page of one dataset's leaderboard, from aggregated rows and reported results.

Pure layout: every number comes from :func:`dferbench.report.leaderboard.aggregate` (with
:mod:`dferbench.report.rowstats`) or from the published-results file. The first table holds
what a reader compares first; a details table, per-class recall and the comparison with
reported numbers follow; reported rows come last, each with its source.
"""

from __future__ import annotations

from typing import Any, Callable

from dferbench.report import rowstats
from dferbench.report.confusion import clips_per_class

SELECTION = ("the checkpoint-selection policy: `best_on_test` picks the epoch by test WAR (the DFER-CLIP paper's "
             "protocol), `last_epoch` keeps the final weights; rows of different policies are not compared with each "
             "other.")


def add_row_command(dataset: str) -> str:
    """The command that produces a first reproduced row of ``dataset``."""
    return f"dferbench run -m dferclip -d {dataset} --set data.root=/path/to/{dataset}"


def _table(headers: list[str], rows: list[list[str]]) -> list[str]:
    from tabulate import tabulate

    return [tabulate(rows, headers=headers, tablefmt="pipe", disable_numparse=True), ""]


def _interval(ci: Any, digits: int = 2) -> str:
    return "-" if ci is None else f"[{ci[0]:.{digits}f}, {ci[1]:.{digits}f}]"


def _p(p: float) -> str:
    return "p < 0.001" if p < 0.001 else f"p = {p:.3f}"


def _versus(row: dict[str, Any]) -> str:
    mark, p = row["not_worse_than_best"], row["holm_p_vs_best"]
    return f"{mark} ({_p(p)})" if p is not None else mark


def rank_text(interval: Any) -> str:
    """A rank interval as the leaderboards print it: "5-10", or "3" when it is one rank."""
    if interval is None:
        return "-"
    low, high = interval
    return str(low) if low == high else f"{low}-{high}"


Image = Callable[[dict[str, Any]], str]  # a row -> its confusion-matrix PNG, relative to the page


def _legend(image: Image | None) -> list[str]:
    return [
        "- **UAR**, **WAR** (%): mean ± sample std over the (fold, seed) units. **95% CI**: the interval of "
        f"that mean, a stratified bootstrap over each fold's test clips ({rowstats.RESAMPLES} resamples, seed "
        f"{rowstats.SEED}); it conditions on the trained models: how far the number would move on another test "
        "sample of the same make-up, not on retraining.",
        "- **vs best (UAR)**: whether the row is not significantly worse in UAR than the best row of its selection "
        f"policy: a paired permutation test on the same test clips ({rowstats.RESAMPLES} permutations) with Holm's "
        f"correction over the rows compared, at level {rowstats.ALPHA:g}; p is Holm's adjusted p-value.",
        "- **rank (95%)**: the row's interval of UAR rank within its policy over the bootstrap, among the rows "
        "scored on the best row's test clips.",
        f"- **selection**: {SELECTION}" + (" A method links to its confusion matrix." if image else ""),
        "",
    ]


def _main_table(rows: list[dict[str, Any]], image: Image | None) -> list[str]:
    """The columns a reader compares first, and a note for each row without statistics."""
    table, rank = [], {}
    for r in rows:
        rank[r["selection"]] = rank.get(r["selection"], 0) + 1
        table.append([str(rank[r["selection"]]), f"[{r['run_name']}]({image(r)})" if image else r["run_name"],
                      r["uar_text"], _interval(r["uar_ci"]), r["war_text"], _interval(r["war_ci"]), _versus(r),
                      rank_text(r["rank_interval"]), f"{len(r['folds'])} x {len(r['seeds'])}", r["selection"],
                      r["family"] or "-", "yes" if r["temporal"] else "no"])
    lines = _table(["#", "method", "UAR", "UAR 95% CI", "WAR", "WAR 95% CI", "vs best (UAR)", "rank (95%)",
                    "folds x seeds", "selection", "family", "temporal model"], table)
    notes = [f"- {r['run_name']} ({r['selection']}): no statistics: {r['_stats_note']}" for r in rows
             if r["_stats_note"]]
    return lines + notes + [""] * bool(notes)


def _details(rows: list[dict[str, Any]]) -> list[str]:
    lines = ["### Details", "",
              "`input`: frames x pixels per clip; `normalize`: the pixel normalisation; `precision`: the arithmetic "
              "of the units (bf16 autocast is the default on GPUs, fp32 on the CPU); `UAR sd`: the spread of the "
              "units' UAR between folds and between seeds of a fold (with one seed per fold, the fold part holds "
              "the seed noise too).", ""]
    lines += _table(["method", "selection", "input", "normalize", "precision", "UAR sd (folds / seeds)",
                     "config hash"],
                    [[r["run_name"], r["selection"], f"{r['num_frames']}x{r['size']}px", r["normalize"], r["precision"],
                      _spread(r["_spread"]), r["config_hash"]] for r in rows])
    return lines + _recall_sections(rows)


def _spread(spread: Any) -> str:
    if spread is None:
        return "-"
    return " / ".join("-" if sd is None else f"{sd:.2f}" for sd in (spread.fold_sd, spread.seed_sd))


def _recall_sections(rows: list[dict[str, Any]]) -> list[str]:
    lines = ["### Per-class recall", "",
             "Recall in % of each class (the mean over the units), with its 95% interval (the same bootstrap; a "
             "class of a few clips gets a wide, coarse interval). `test clips`: the class's clips over the folds.",
             ""]
    for r in rows:
        if r["_recall"] is None:
            continue
        counts = clips_per_class(r)
        table = [[c, str(n), "-", "-"] if v is None else [c, str(n), f"{v[0]:.1f}", _interval(v[1:], 1)]
                 for c, n, v in zip(r["classes"], counts, r["_recall"])]
        lines += [f"<details><summary>{r['run_name']} ({r['selection']})</summary>", ""]
        lines += _table(["class", "test clips", "recall", "95% CI"], table)
        lines += ["</details>", ""]
    return lines


def _against_reported(rows: list[dict[str, Any]], reported: list[dict[str, Any]]) -> list[str]:
    """Reproduced rows of a method that has reported numbers: the difference, and whether the
    reported number lies inside the reproduced interval."""
    table = []
    for r in rows:
        for e in reported:
            if e.get("model") != r["model"] or r["variant"]:
                continue
            for metric in ("uar", "war"):
                ci = r[f"{metric}_ci"]
                inside = "-" if ci is None else ("yes" if ci[0] <= e[metric] <= ci[1] else "no")
                table.append([r["run_name"], e["method"], metric.upper(), f"{r[metric]:.2f} {_interval(ci)}",
                              f"{e[metric]:.2f}", f"{r[metric] - e[metric]:+.2f}", inside,
                              f"{r['selection']} / {e.get('selection', 'not stated')}"])
    if not table:
        return []
    return ["### Reproduced vs reported", "",
            "The reproduced number (with its 95% interval) minus the number its method's authors report; rows "
            "selected by another policy than the report are not directly comparable.", ""] + \
        _table(["reproduced", "reported method", "metric", "reproduced (95% CI)", "reported", "difference",
                "reported inside CI", "selection (here / reported)"], table)


def _reported(reported: list[dict[str, Any]]) -> list[str]:
    sources = list(dict.fromkeys(e["source"] for e in reported))
    ordered = sorted(reported, key=lambda e: (-e["uar"], e["method"]))
    lines = ["## Reported in papers (not produced by dferbench)", "",
             "Numbers as their authors report them, not reproduced here; `source` refers to the list below. "
             "`selection`: the checkpoint-selection policy where the source states it (DFER-CLIP selects on the "
             "test split, MAE-DFER reports the last epoch: numbers selected differently are not directly "
             "comparable). `backbone`: \"-\" where the source does not state it.", ""]
    lines += _table(["method", "UAR", "WAR", "backbone", "modality", "selection", "source"],
                    [[e["method"], f"{e['uar']:.2f}", f"{e['war']:.2f}", e["backbone"], e["modality"],
                      e.get("selection", "-"), f"[{sources.index(e['source']) + 1}]"] for e in ordered])
    notes = {e["source"]: e["note"] for e in reported if e.get("note")}
    lines += [f"{i}. {s}" + (f" ({notes[s]})" if s in notes else "") for i, s in enumerate(sources, 1)]
    return lines + [""]


def _skipped(skipped: list[str]) -> list[str]:
    if not skipped:
        return []
    return [f"**Built without {len(skipped)} invalid result file{'s' * (len(skipped) > 1)}** "
            "(`dferbench leaderboard --skip-invalid`):", ""] + [f"- {s}" for s in skipped] + [""]


def summary(dataset: str, rows: list[dict[str, Any]], skipped: list[str]) -> str:
    """The first table alone (what ``dferbench run`` prints at the end), with its notes."""
    lines = [f"# Leaderboard: {dataset}", ""] + _skipped(skipped)
    if not rows:
        return "\n".join(lines + ["No results yet."])
    lines += _main_table(rows, None)
    lines.append("UAR/WAR: mean ± std over the units; 95% CI: stratified bootstrap over the test clips; vs best: "
                 "paired test against the best row (Holm). The full page: `dferbench leaderboard`.")
    return "\n".join(lines)


def page(dataset: str, rows: list[dict[str, Any]], reported: list[dict[str, Any]], skipped: list[str],
         image: Image | None) -> str:
    """The whole page; ``skipped`` lists invalid result files left out, one line each; ``image``
    (or None for no links) gives each row's confusion-matrix PNG."""
    lines = [f"# Leaderboard: {dataset}", "",
             "Generated by `dferbench leaderboard` from result files only; do not edit by hand.", "",
             "## Reproduced here", ""] + _skipped(skipped)
    if rows:
        lines += _legend(image) + _main_table(rows, image) + _details(rows) + _against_reported(rows, reported)
    else:
        lines += [f"None has been produced here yet. To add a row: get the data (docs/datasets.md says where and "
                  f"how), run `{add_row_command(dataset)}`, then "
                  "`dferbench leaderboard`.", ""]
    if reported:
        lines += _reported(reported)
    return "\n".join(lines)
