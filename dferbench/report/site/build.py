"""The static leaderboard site, built (or checked) from result files only.

Rows come from :func:`dferbench.report.leaderboard.aggregate` and :func:`published_rows`, exactly
as the Markdown leaderboards get them; this module only lays them out. Extra keys that a
row carries (``uar_ci``, ``not_worse_than_best``, ``rank_interval``, a backbone ...) become
columns of their own. The site is plain files that work from ``file://``: no CDN, no
fonts, one CSS and one small script, both written here. Same results, same bytes: there
is no timestamp anywhere, so ``check`` can compare a built site with a folder.

Layout of the site (paths relative to its folder)::

    index.html, site.css, site.js             one sortable, filterable table per dataset
    <dataset>/index.html                       the dataset: classes, folds, clip counts
    <dataset>/<run>--<selection>.html          one row: its units, per-class recall, confusion
                                               matrix, training curves, config, provenance
    <dataset>/units/<run dir>/fold*-seed*.*    copies of the row's result JSON and predictions CSV
"""

from __future__ import annotations

import functools
import http.server
import json
import sys
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, Mapping
from urllib.parse import quote

import numpy as np

from dferbench.errors import DferbenchError
from dferbench.report.leaderboard import _slug, aggregate, board_datasets, published_rows
from dferbench.report.markdown import add_row_command, rank_text
from dferbench.report.site.charts import heat_style, line_chart
from dferbench.run.results import iter_results

HERE = Path(__file__).parent
STATIC = ("site.css", "site.js")
GENERATOR = '<meta name="generator" content="dferbench site">'  # marks a folder as ours to rewrite

# Row keys the fixed columns show (or that are not one value per row); any other key becomes a column.
SHOWN = {"run_name", "model", "variant", "family", "temporal", "selection", "uar", "uar_text", "war", "war_text",
         "folds", "seeds", "confusion", "classes", "config_hash", "num_frames", "size", "normalize", "precision", "units"}
# Columns after UAR and WAR, in the Markdown leaderboard's order and with its labels; other extra keys
# follow alphabetically.
STATS = {"uar_ci": "UAR 95% CI", "war_ci": "WAR 95% CI", "not_worse_than_best": "vs best (UAR)",
         "holm_p_vs_best": "Holm p vs best", "rank_interval": "rank (95%)"}
# What a reported row says that a reproduced one may not: shown whenever any row has it.
REPORTED = ("backbone", "modality")
FILTERS = {"family": "family", "temporal": "temporal model", "selection": "selection", "precision": "precision",
           "source": "reproduced / reported"}


@dataclass(frozen=True)
class Column:
    key: str
    label: str
    numeric: bool = False


@dataclass(frozen=True)
class Cell:
    text: str
    sort: str = ""  # what the table sorts by; "" sorts last either way
    href: str = ""
    note: str = ""


def _fmt(value: Any) -> Cell:
    """One cell for a scalar or a (low, high) interval."""
    if isinstance(value, np.generic):
        value = value.item()
    if value is None:
        return Cell("-")
    if isinstance(value, bool):
        return Cell("yes" if value else "no", "1" if value else "0")
    if isinstance(value, int):
        return Cell(str(value), str(value))
    if isinstance(value, float):
        return Cell(f"{value:.2f}", f"{value:.6f}")
    if isinstance(value, str):
        return Cell(value or "-", value)
    low, high = (_fmt(v) for v in value)
    return Cell(f"[{low.text}, {high.text}]", low.sort)


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float, np.number)) and not isinstance(value, bool)


def _is_interval(value: Any) -> bool:
    return isinstance(value, (list, tuple)) and len(value) == 2 and all(_is_number(v) for v in value)


def _cellable(value: Any) -> bool:
    return value is None or isinstance(value, (bool, int, float, str, np.generic)) or _is_interval(value)


def columns(rows: list[dict[str, Any]], reported: list[Mapping[str, Any]] = ()) -> list[Column]:
    """The index table's columns: the Markdown leaderboard's, then any extra key of ``rows`` and the
    ``REPORTED`` keys any row or ``reported`` entry has."""
    extra = sorted({k for r in rows for k in r if k not in SHOWN and not k.startswith("_")},
                   key=lambda k: (list(STATS).index(k) if k in STATS else len(STATS), k))
    extra = [k for k in extra if all(_cellable(r.get(k)) for r in rows)]
    extra += [k for k in REPORTED if k not in extra and any(k in e for e in reported)]
    numeric = {k for k in extra if any(_is_number(r.get(k)) or _is_interval(r.get(k)) for r in rows)}
    stats = {k: Column(k, label, k in numeric) for k, label in STATS.items() if k in extra}

    def of(*keys: str) -> list[Column]:
        return [stats[k] for k in keys if k in stats]

    return [Column("rank", "#", True), Column("method", "method"), Column("uar", "UAR", True), *of("uar_ci"),
            Column("war", "WAR", True), *of("war_ci"), *of("not_worse_than_best", "holm_p_vs_best", "rank_interval"),
            Column("folds", "folds", True), Column("seeds", "seeds", True), Column("selection", "selection"),
            Column("family", "family"), Column("temporal", "temporal model"),
            *[Column(k, k.replace("_", " "), k in numeric) for k in extra if k not in STATS],
            Column("input", "input"), Column("normalize", "normalize"), Column("precision", "precision"),
            Column("config_hash", "config hash")]


def _filled(cols: list[Column], table: list[dict[str, Any]]) -> list[Column]:
    """``cols`` less those no row of ``table`` has a value in (a table of reported rows only has few)."""
    core = {"rank", "method", "uar", "war"}
    return [c for c in cols if c.key in core or any(r["cells"].get(c.key, Cell("-")).text != "-" for r in table)]


def _reproduced_cells(row: dict[str, Any], rank: int, href: str) -> dict[str, Cell]:
    cells = {k: _fmt(row[k]) for k in row if k not in SHOWN and _cellable(row[k])}
    if row.get("holm_p_vs_best") is not None:  # three decimals, as the Markdown leaderboard: 0.009 is no 0.01
        p = float(row["holm_p_vs_best"])
        cells["holm_p_vs_best"] = Cell("< 0.001" if p < 0.001 else f"{p:.3f}", f"{p:.6f}")
    if row.get("rank_interval") is not None:
        cells["rank_interval"] = Cell(rank_text(row["rank_interval"]), f"{int(row['rank_interval'][0]):06d}")
    cells.update(
        rank=Cell(str(rank), str(rank)), method=Cell(row["run_name"], row["run_name"], href),
        family=_fmt(row["family"]), temporal=_fmt(bool(row["temporal"])),
        uar=Cell(row["uar_text"], f"{row['uar']:.6f}"), war=Cell(row["war_text"], f"{row['war']:.6f}"),
        folds=_fmt(len(row["folds"])), seeds=_fmt(len(row["seeds"])), selection=_fmt(row["selection"]),
        input=Cell(f"{row['num_frames']}x{row['size']}px", f"{int(row['num_frames']):06d}x{int(row['size']):06d}"),
        normalize=_fmt(row["normalize"]), precision=_fmt(row["precision"]), config_hash=_fmt(row["config_hash"]))
    return cells


def _reported_cells(entry: Mapping[str, Any]) -> dict[str, Cell]:
    cells = {k: _fmt(v) for k, v in entry.items() if _cellable(v)}
    cells.update(rank=Cell("-"), method=Cell(entry["method"], entry["method"], note=entry.get("source", "")),
                 uar=_fmt(float(entry["uar"])), war=_fmt(float(entry["war"])))
    return cells


def _filter_value(cells: Mapping[str, Cell], key: str) -> str:
    cell = cells.get(key)
    return cell.text if cell and cell.text != "-" else ""


def _page_names(rows: list[dict[str, Any]]) -> dict[int, str]:
    """``id(row) -> file name`` of its page; a suffix tells apart run names with one slug."""
    names: dict[int, str] = {}
    seen: set[str] = set()
    for row in sorted(rows, key=lambda r: (r["run_name"], r["selection"])):
        base = f"{_slug(row['run_name']) or 'run'}--{_slug(row['selection'])}"
        name, n = base, 2
        while name in seen:
            name, n = f"{base}-{n}", n + 1
        seen.add(name)
        names[id(row)] = name + ".html"
    return names


def _agreed(units: list[dict[str, Any]], key: str) -> list[tuple[str, Any]]:
    """``[("", value)]`` when every unit has the same value, else ``[(unit label, value), ...]``."""
    values = [u.get(key) for u in units]
    if all(v == values[0] for v in values):
        return [("", values[0])]
    return [(_unit_label(u), v) for u, v in zip(units, values)]


def _anchor(dataset: str) -> str:
    return _slug(dataset) or "dataset"


def _unit_label(unit: Mapping[str, Any]) -> str:
    return f"fold {unit['fold']} seed {unit['seed']}"


def _text(value: Any) -> str:
    if isinstance(value, (dict, list)):
        return json.dumps(value, indent=2)
    if isinstance(value, float):
        return f"{value:g}"
    return "-" if value is None or value == "" else str(value)


def _display(value: Any) -> dict[str, str]:
    """A provenance value: inline text, or a collapsible block for nested data."""
    if isinstance(value, dict) and all(not isinstance(v, (dict, list)) for v in value.values()):
        return {"inline": " · ".join(f"{k} {_text(v)}" for k, v in value.items()) or "none"}
    if isinstance(value, (dict, list)):
        return {"block": _text(value), "summary": f"{len(value)} entr{'y' if len(value) == 1 else 'ies'}"}
    return {"inline": _text(value)}


def _mean_std(values: list[float]) -> str:
    if not values:
        return "-"
    if len(values) == 1:
        return f"{values[0]:.2f}"
    return f"{np.mean(values):.2f} ± {np.std(values, ddof=1):.2f}"


class Site:
    """The files of one site, as ``{relative posix path: bytes}``, rendered from results."""

    def __init__(self, results_dir: Path, datasets: list[str] | None = None):
        from jinja2 import Environment, FileSystemLoader, StrictUndefined

        self.results_dir = Path(results_dir)
        self.env = Environment(loader=FileSystemLoader(HERE / "templates"), autoescape=True,
                               undefined=StrictUndefined, trim_blocks=True, lstrip_blocks=True,
                               keep_trailing_newline=True)
        self.files: dict[str, bytes] = {name: (HERE / "static" / name).read_bytes() for name in STATIC}
        sections = [self._dataset(name) for name in board_datasets(self.results_dir, datasets)]
        sections.sort(key=lambda section: not section["rows"])  # what was produced here first
        self._page("index.html", "index.html", root="", title="Leaderboards", sections=sections)

    def _page(self, path: str, template: str, **context: Any) -> None:
        self.files[path] = self.env.get_template(template).render(**context).encode()

    def _dataset(self, dataset: str) -> dict[str, Any]:
        units = list(iter_results(self.results_dir, dataset))
        rows = aggregate(units)
        names = _page_names(rows)
        href = quote(dataset) + "/"
        by_selection: Counter[str] = Counter()
        table = []
        for row in rows:
            by_selection[row["selection"]] += 1
            cells = _reproduced_cells(row, by_selection[row["selection"]], href + quote(names[id(row)]))
            table.append({"cells": cells, "source": "reproduced"})
            self._row_page(dataset, row, names[id(row)], cells)
        published = sorted(published_rows(dataset), key=lambda e: (-e["uar"], e["method"]))  # as the Markdown page
        reported = [{"cells": _reported_cells(e), "source": "reported"} for e in published]
        for r in table + reported:
            r["filters"] = {k: r["source"] if k == "source" else _filter_value(r["cells"], k) for k in FILTERS}
        filters = [{"key": key, "label": label, "options": options} for key, label in FILTERS.items()
                   if (options := sorted({r["filters"][key] for r in table + reported} - {""}))]
        section = {"name": dataset, "anchor": _anchor(dataset), "href": href + "index.html",
                   "columns": _filled(columns(rows, published), table + reported), "rows": table,
                   "reported": reported, "filters": filters,
                   "n_units": len(units), "classes": units[0]["classes"] if units else [],
                   "add_row": add_row_command(dataset)}
        self._dataset_page(dataset, units, rows, names)
        return section

    def _copy_unit(self, dataset: str, unit: dict[str, Any]) -> tuple[str, str]:
        """Copy a unit's JSON and predictions into the site; their hrefs from a row page."""
        path = Path(unit["_path"])
        rel = path.relative_to(self.results_dir / dataset).as_posix()
        self.files[f"{dataset}/units/{rel}"] = path.read_bytes()
        csv = path.with_suffix(".predictions.csv")
        csv_href = ""
        if csv.is_file():
            csv_rel = csv.relative_to(self.results_dir / dataset).as_posix()
            self.files[f"{dataset}/units/{csv_rel}"] = csv.read_bytes()
            csv_href = "units/" + quote(csv_rel)
        return "units/" + quote(rel), csv_href

    def _row_page(self, dataset: str, row: dict[str, Any], name: str, cells: dict[str, Cell]) -> None:
        units = row["units"]
        unit_rows = []
        for u in units:
            json_href, csv_href = self._copy_unit(dataset, u)
            fit = u.get("fit") or {}
            epochs = f"{fit['selected_epoch']} of {fit['epochs']}" if {"selected_epoch", "epochs"} <= set(fit) else "-"
            unit_rows.append({"fold": u["fold"], "seed": u["seed"], "uar": f"{u['uar']:.2f}",
                              "war": f"{u['war']:.2f}",
                              "n_train": _text(u.get("n_train")), "n_test": _text(u.get("n_test")), "epoch": epochs,
                              "precision": _text(u.get("precision")), "device": _text(u.get("device")),
                              "wall": f"{u['wall_seconds']:.1f}" if u.get("wall_seconds") is not None else "-",
                              "json": json_href, "csv": csv_href})
        classes = list(row["classes"])
        provenance = [(label, [(unit, _display(v)) for unit, v in _agreed(units, key)]) for key, label in (
            ("git_commit", "git commit"), ("device", "device"), ("precision", "precision"),
            ("data_pipeline", "data pipeline"), ("world_size", "processes"), ("versions", "versions"),
            ("plugins", "plugins"), ("fit", "method facts (fit)"), ("dataset_notes", "dataset notes"),
            ("finished_at", "finished at")) if any(key in u for u in units)]
        summary = [(c.label, cells[c.key]) for c in columns([row]) if c.key not in ("rank", "method")]
        self._page(f"{dataset}/{name}", "row.html", root="../", title=f"{row['run_name']} on {dataset}",
                   dataset=dataset, anchor=_anchor(dataset), row=row, summary=summary, units=unit_rows,
                   classes=classes, recall=_recall(units, classes),
                   has_recall=any(u.get("per_class_recall") for u in units),
                   confusion=_confusion(row), curves=_curves(units), configs=_agreed(units, "config"),
                   provenance=provenance, text=_text)

    def _dataset_page(self, dataset: str, units: list[dict[str, Any]], rows: list[dict[str, Any]],
                      names: dict[int, str]) -> None:
        class_lists: list[list[str]] = []
        for u in units:
            if u["classes"] not in class_lists:
                class_lists.append(u["classes"])
        folds = []
        for fold in sorted({u["fold"] for u in units}):
            of_fold = [u for u in units if u["fold"] == fold]
            per_class = [tuple(int(v) for v in np.asarray(u["confusion"]).sum(axis=1)) for u in of_fold]
            folds.append({"fold": fold, "n_train": _distinct(u.get("n_train") for u in of_fold),
                          "n_test": _distinct(u.get("n_test") for u in of_fold),
                          "per_class": [_distinct(counts) for counts in zip(*per_class)],
                          "units": len(of_fold)})
        notes = _agreed(units, "dataset_notes") if units else []
        self._page(f"{dataset}/index.html", "dataset.html", root="../", title=f"Dataset {dataset}", dataset=dataset,
                   anchor=_anchor(dataset), class_lists=class_lists, folds=folds, notes=[n for n in notes if n[1]],
                   text=_text, add_row=add_row_command(dataset),
                   rows=[{"name": r["run_name"], "selection": r["selection"], "uar": r["uar_text"],
                          "href": quote(names[id(r)])} for r in rows])


def _recall(units: list[dict[str, Any]], classes: list[str]) -> list[dict[str, Any]]:
    """Per class: recall as mean ± sample std over the units, then unit by unit ("-" where not recorded)."""
    lines = []
    for i, cls in enumerate(classes):
        per_unit = [u["per_class_recall"][i] if u.get("per_class_recall") else None for u in units]
        lines.append({"name": cls, "mean": _mean_std([v for v in per_unit if v is not None]),
                      "units": ["-" if v is None else f"{v:.1f}" for v in per_unit]})
    return lines


def _confusion(row: dict[str, Any]) -> list[dict[str, Any]]:
    """The row's summed confusion matrix as heat-map lines: counts, row shares and cell colours."""
    lines = []
    for cls, counts in zip(row["classes"], np.asarray(row["confusion"], dtype=np.int64)):
        total = int(counts.sum())
        lines.append({"name": cls, "total": total, "cells": [
            {"count": int(c), "pct": f"{100 * c / total:.0f}" if total else "-",
             "style": heat_style(c / total if total else 0.0)} for c in counts]})
    return lines


def _curves(units: list[dict[str, Any]]) -> list[str]:
    """One SVG figure per numeric key of the per-epoch history (training loss first), a line per unit."""
    keys = sorted({k for u in units for h in u.get("history") or [] for k, v in h.items()
                   if k != "epoch" and _is_number(v)}, key=lambda k: (k != "train_loss", k))
    figures = []
    for key in keys:
        series = [(_unit_label(u), [(h["epoch"], float(h[key])) for h in u.get("history") or []
                                    if key in h and "epoch" in h]) for u in units]
        series = [(name, points) for name, points in series if points]
        if series:
            label = {"train_loss": "training loss", "test_war": "test WAR (%)"}.get(key, key.replace("_", " "))
            figures.append(line_chart(f"{label} per epoch, one line per unit", label, series))
    return figures


def _distinct(values: Iterable[Any]) -> str:
    found = sorted({v for v in values if v is not None})
    return " / ".join(str(v) for v in found) or "-"


def render_site(results_dir: str | Path, datasets: list[str] | None = None) -> dict[str, bytes]:
    """Every file of the site for ``results_dir`` (all datasets there by default)."""
    return Site(Path(results_dir), datasets).files


def _existing(out: Path) -> set[str]:
    return {p.relative_to(out).as_posix() for p in out.rglob("*") if p.is_file()} if out.is_dir() else set()


def build_site(results_dir: str | Path, out_dir: str | Path, datasets: list[str] | None = None, *,
               check: bool = False) -> list[str]:
    """Write the site for ``results_dir`` into ``out_dir`` and return the paths written.

    With ``check``, write nothing and return the paths that differ from a fresh build:
    missing, changed, or left over from results that are gone. A build replaces a
    previous site in ``out_dir`` (files no longer part of it are removed) and refuses a
    non-empty folder that holds no site.
    """
    files = render_site(results_dir, datasets)
    out = Path(out_dir)
    existing = _existing(out)
    if check:
        stale = {rel for rel, data in files.items() if rel not in existing or (out / rel).read_bytes() != data}
        return sorted(str(out / rel) for rel in stale | (existing - set(files)))
    index = out / "index.html"
    if existing and not (index.is_file() and GENERATOR in index.read_text(errors="replace")):
        raise DferbenchError(f"{out} is not empty and holds no dferbench site: pass an empty or new --out folder")
    for rel in sorted(existing - set(files)):
        (out / rel).unlink()
    for folder in sorted((p for p in out.rglob("*") if p.is_dir()), key=lambda p: -len(p.parts)):
        if not any(folder.iterdir()):
            folder.rmdir()
    for rel, data in files.items():
        path = out / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        if not path.is_file() or path.read_bytes() != data:
            path.write_bytes(data)
    return sorted(str(out / rel) for rel in files)


def make_server(out_dir: str | Path, port: int = 8000) -> http.server.ThreadingHTTPServer:
    """An HTTP server for ``out_dir`` bound to 127.0.0.1 only (``port`` 0 picks a free one)."""
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(out_dir))
    try:
        return http.server.ThreadingHTTPServer(("127.0.0.1", port), handler)
    except OSError as err:
        raise DferbenchError(f"cannot serve on 127.0.0.1:{port} ({err.strerror}): pass another --port") from None


def serve_site(out_dir: str | Path, port: int = 8000) -> None:
    """Serve ``out_dir`` at http://127.0.0.1:port/ (this machine only) until Ctrl-C."""
    with make_server(out_dir, port) as server:
        print(f"serving {out_dir} at http://127.0.0.1:{server.server_port}/index.html (Ctrl-C stops)",
              file=sys.stderr, flush=True)
        try:
            server.serve_forever()
        except KeyboardInterrupt:
            pass


def site(results: str | Path = "results", out: str | Path = "build/site", datasets: list[str] | None = None,
         check: bool = False, serve: bool = False, port: int = 8000) -> list[str]:
    """What ``dferbench site`` does: build (or ``check``) the site, then optionally ``serve`` it.

    Returns the paths written, or with ``check`` the stale ones (empty: up to date).
    """
    if check and serve:
        raise DferbenchError("--check compares a site and --serve shows one: pass only one of them")
    if not Path(results).is_dir():
        raise DferbenchError(f"results directory {results} does not exist: run `dferbench run` first")
    paths = build_site(results, out, datasets, check=check)
    if serve:
        serve_site(out, port)
    return paths
