"""Summaries of saved ``dferbench bench train --json`` reports, and what the paper's table costs.

``python -m dferbench.tools.bench_report summarize REPORT.json ...`` (also reachable as
``python -m dferbench.tools.bench_train summarize``) prints Markdown tables.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from dferbench.tools.bench_train import format_table, timing_table


def paper_cost(train_clips_per_s: float, eval_clips_per_s: float, *, seeds: int = 3, methods: int = 1,
               epochs: int = 50, eval_every_epoch: bool = True) -> list[dict[str, Any]]:
    """GPU-hours of DFER-CLIP-style training for the paper's table, from measured throughputs.

    Fold sizes (train/test clips, mean over folds): DFEW 5 x 9357/2339, FERV39k 1 x
    31088/7847, MAFW 5 x 7338/1834 (``shared/reference/datasets.md``). ``eval_every_epoch``
    is the paper's protocol (the test set is scored after every epoch); otherwise once.
    """
    sizes = {"DFEW": (5, 9357, 2339), "FERV39k": (1, 31088, 7847), "MAFW": (5, 7338, 1834)}
    rows = []
    for name, (folds, n_train, n_test) in sizes.items():
        evals = epochs if eval_every_epoch else 1
        unit_s = epochs * n_train / train_clips_per_s + evals * n_test / eval_clips_per_s
        rows.append({"dataset": name, "units": folds * seeds * methods, "hours_per_unit": round(unit_s / 3600, 2),
                     "gpu_hours": round(folds * seeds * methods * unit_s / 3600, 1)})
    rows.append({"dataset": "total", "units": sum(r["units"] for r in rows), "hours_per_unit": None,
                 "gpu_hours": round(sum(r["gpu_hours"] for r in rows), 1)})
    return rows


def summarize_reports(reports: list[dict[str, Any]]) -> str:
    """Markdown: the timing tables with the card's name, the accuracy check, and the cost of
    the paper's table extrapolated from the measured ``fast`` and ``reference`` throughputs."""
    lines: list[str] = []
    timing: dict[str, dict[str, Any]] = {}
    for report in reports:
        env = report.get("environment", {})
        if report.get("timing"):
            lines += [f"### Training step, {env.get('card', '?')} ({env.get('device', '?')}), torch {env.get('torch', '?')}",
                      "", timing_table(report["timing"]), ""]
            for row in report["timing"]:
                timing.setdefault(row["mode"], row)
        if report.get("accuracy"):
            acc = report["accuracy_settings"]
            lines += [f"### Accuracy after {acc['epochs']} epochs ({acc['clip_model']}, "
                      f"{rows_weights(report['accuracy'])} weights, synthetic, {acc['num_clips']} clips, fold "
                      f"{acc['fold']}), {env.get('card', '?')}", "", format_table(report["accuracy"]), "",
                      format_table(report["accuracy_summary"]), ""]
    for mode in ("reference", "fast", "fast-compile"):
        row = timing.get(mode)
        if row and row.get("eval_clips_per_s"):
            lines += [f"### Paper table (DFER-CLIP recipe: 50 epochs, test scored every epoch, 3 seeds, one method), "
                      f"`{mode}` at {row['clips_per_s']} train / {row['eval_clips_per_s']} eval clips/s", "",
                      format_table(paper_cost(row["clips_per_s"], row["eval_clips_per_s"])), ""]
    return "\n".join(lines)


def rows_weights(rows: list[dict[str, Any]]) -> str:
    return ", ".join(sorted({str(r.get("weights", "random")) for r in rows}))


def main(argv: list[str] | None = None) -> None:
    import argparse
    import json

    parser = argparse.ArgumentParser(prog="python -m dferbench.tools.bench_report")
    sub = parser.add_subparsers(dest="command", required=True)
    summarize = sub.add_parser("summarize", help="Markdown tables from `dferbench bench train --json` reports")
    summarize.add_argument("reports", nargs="+")
    args = parser.parse_args(argv)
    reports = []
    for path in args.reports:
        try:
            reports.append(json.loads(Path(path).read_text()))
        except (OSError, ValueError) as exc:
            print(f"(skipping {path}: {exc})")
    print(summarize_reports(reports))


if __name__ == "__main__":
    main()


if __name__ == "__main__":
    main()
