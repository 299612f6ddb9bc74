"""Leaderboards built from result files only: one Markdown page per dataset, and confusion-matrix PNGs.

Never builds a model. Each reproduced row aggregates the units of one run name (model +
variant) under one selection policy: UAR and WAR as mean ± sample std over every (fold,
seed) unit, with the statistics of :mod:`dferbench.report.rowstats` (intervals, the test
against the best row, rank intervals, per-class recall). Published numbers are shown in a
separate table, marked as reported, each with its source. Invalid result files are
refused, each named (:mod:`dferbench.report.inputs`), unless the caller skips them.
"""

from __future__ import annotations

from pathlib import Path
from statistics import fmean, stdev
from typing import Any, Callable, Mapping

import numpy as np

from dferbench.errors import DferbenchError, unknown_name
from dferbench.files import replacing, tomllib
from dferbench.report import inputs
from dferbench.report.confusion import confusion_png
from dferbench.report.markdown import page, summary
from dferbench.run.results import PROTOCOL_GLOBS


PUBLISHED = Path(__file__).with_name("published_results.toml")


def _slug(text: str) -> str:
    return "".join(c if c.isalnum() or c in "._+-" else "-" for c in text).strip("-")


def _pm(values: list[float]) -> str:
    """``mean ± sample std``, or the value alone for one unit. Exactly rounded (fsum, fractions),
    so the printed digits never depend on the order of summation."""
    if len(values) == 1:
        return f"{values[0]:.2f}"
    return f"{fmean(values):.2f} ± {stdev(values):.2f}"


def _png_name(row: Mapping[str, Any]) -> str:
    return f"{_slug(row['run_name'])}--{row['selection']}.png"


def has_temporal_model(result: Mapping[str, Any]) -> bool:
    """Whether the run modelled time, as recorded (a model's ``temporal`` capability decides,
    with the run's options: DFER-CLIP at ``temporal_depth = 0`` does not)."""
    return bool(result.get("temporal"))


def aggregate(results: list[dict[str, Any]], *, with_stats: bool = True) -> list[dict[str, Any]]:
    """Group unit results by (run name, selection); one dict per leaderboard row, best UAR first.

    ``units`` keeps the row's unit results (the dicts given, in (fold, seed) order) for
    reports that show them one by one, such as the site's row pages. With ``with_stats``
    (the default) the rows also carry the keys of :func:`dferbench.report.rowstats.annotate`.
    """
    groups: dict[tuple[str, str], list[dict[str, Any]]] = {}
    for result in sorted(results, key=lambda r: (r["fold"], r["seed"])):
        groups.setdefault((result["run_name"], result.get("selection", "last_epoch")), []).append(result)
    rows = []
    for (run_name, selection), units in groups.items():
        first = units[0]
        uars, wars = [float(u["uar"]) for u in units], [float(u["war"]) for u in units]
        rows.append({
            "run_name": run_name,
            "model": first["model"],
            "variant": first.get("variant", ""),
            "family": first.get("family") or "",
            "temporal": has_temporal_model(first),
            "selection": selection,
            "uar": fmean(uars),
            "uar_text": _pm(uars),
            "war": fmean(wars),
            "war_text": _pm(wars),
            "folds": sorted({u["fold"] for u in units}),
            "seeds": sorted({u["seed"] for u in units}),
            "confusion": np.sum([np.array(u["confusion"]) for u in units], axis=0),
            "classes": first["classes"],
            "config_hash": ",".join(sorted({u["config_hash"] for u in units})),
            "num_frames": first["num_frames"],
            "size": first["image_size"],
            "normalize": first["normalize"],
            "precision": "+".join(sorted({u.get("precision") or "-" for u in units})),
            "units": units,
        })
    rows.sort(key=lambda r: (r["selection"] != "last_epoch", r["selection"], -r["uar"], r["run_name"]))
    if with_stats:
        from dferbench.report import rowstats

        rowstats.annotate(rows)
    return rows


def published_rows(dataset: str | None = None) -> list[dict[str, Any]]:
    """Reported (published) results, of ``dataset`` or all, in file order."""
    with PUBLISHED.open("rb") as f:
        entries = tomllib.load(f).get("result", [])
    return [e for e in entries if dataset is None or e["dataset"] == dataset]


def board_datasets(results_dir: Path, datasets: list[str] | None = None, out_dir: Path | None = None) -> list[str]:
    """The datasets a leaderboard (or the site) shows: ``datasets``, each checked to have results under
    ``results_dir`` or reported numbers, else every dataset that has either."""
    found = known_datasets(results_dir, out_dir)
    reported = sorted({e["dataset"] for e in published_rows()})
    for name in datasets or []:
        if name not in found and name not in reported:
            raise DferbenchError(f"{unknown_name('dataset', name, set(found) | set(reported))} (the datasets with "
                                 f"results under {results_dir} or with reported numbers)")
    return datasets or sorted(set(found) | set(reported))


def known_datasets(results_dir: Path, out_dir: Path | None = None) -> list[str]:
    """Folders of ``results_dir`` that hold result files (never ``out_dir``, when it lies inside)."""
    root = Path(results_dir)
    if not root.is_dir():
        return []
    skip = Path(out_dir).resolve() if out_dir is not None else None
    return sorted(p.name for p in root.iterdir() if p.is_dir() and not p.name.startswith(".")
                  and p.resolve() != skip
                  and any(inputs.result_files(root, p.name, protocol) for protocol in PROTOCOL_GLOBS))


def render(dataset: str, results_dir: Path, *, image_dir: str | None = None,
           skip_invalid: bool = False) -> tuple[str, list[dict[str, Any]]]:
    """Markdown for ``dataset`` from the result files under ``results_dir``, and its rows.

    Raises :class:`~dferbench.report.inputs.InvalidResults` for invalid result files unless
    ``skip_invalid``; skipped files are then listed on the page.
    """
    results, skipped = inputs.checked_results(results_dir, dataset, skip_invalid)
    rows = aggregate(results)
    image = (lambda row: f"{image_dir}/{_png_name(row)}") if image_dir else None
    return page(dataset, rows, published_rows(dataset), _relative(skipped, Path(results_dir)), image), rows


def summarize(dataset: str, results_dir: Path) -> str:
    """The first table of ``dataset``'s page (invalid result files skipped and listed): what a
    run prints when it finishes."""
    results, skipped = inputs.checked_results(results_dir, dataset, skip_invalid=True)
    return summary(dataset, aggregate(results), _relative(skipped, Path(results_dir)))


def _relative(invalid: list[inputs.Invalid], results_dir: Path) -> list[str]:
    return [f"{Path(i.path).relative_to(results_dir).as_posix()}: {i.problem}" for i in invalid]


def build(results_dir: Path, out_dir: Path, datasets: list[str] | None = None, *, check: bool = False,
          images: bool = True, skip_invalid: bool = False,
          echo: Callable[[str], None] | None = None) -> list[str]:
    """Write (or with ``check``, compare) ``out_dir/<dataset>.md`` and the PNGs; return the written
    (or stale) page paths. Datasets with robustness results also get ``robustness-<dataset>.md``
    and its plot; without ``datasets``, transfer results give ``transfer.md``.

    Datasets: those given, else every dataset with results and every dataset with reported
    rows. Every result file of them is checked first; invalid ones raise one
    :class:`~dferbench.report.inputs.InvalidResults` naming them all, unless ``skip_invalid``,
    when ``echo`` (a callable taking one line) is told about each and how many were skipped.
    """
    results_dir, out_dir = Path(results_dir), Path(out_dir)
    names = board_datasets(results_dir, datasets, out_dir)
    invalid = [i for name in names for protocol in PROTOCOL_GLOBS
               for i in inputs.read_results(results_dir, name, protocol)[1]]
    if invalid and not skip_invalid:
        raise inputs.InvalidResults(invalid)
    echo = echo or print
    for item in invalid:
        echo(f"skipped {item}")
    if invalid:
        echo(f"skipped {len(invalid)} invalid result file{'s' * (len(invalid) > 1)}")
    touched = []
    for dataset in names:
        markdown, rows = render(dataset, results_dir, image_dir=dataset if images else None, skip_invalid=True)
        path = out_dir / f"{dataset}.md"
        if check:
            if not path.is_file() or path.read_text() != markdown:
                touched.append(str(path))
            continue
        with replacing(path) as tmp:
            tmp.write_text(markdown)
        touched.append(str(path))
        if images:
            _write_images(dataset, rows, out_dir / dataset)
    touched += _protocol_pages(results_dir, out_dir, names, every=not datasets, check=check, images=images)
    return touched


def _protocol_pages(results_dir: Path, out_dir: Path, names: list[str], *, every: bool, check: bool,
                    images: bool) -> list[str]:
    """``robustness-<dataset>.md`` (and its plot) for each of ``names`` with robustness results;
    with ``every``, ``transfer.md`` when there are transfer results. Returns the pages written
    (or, with ``check``, the stale ones)."""
    from dferbench.report import robustness, transfer

    touched = []

    def write(path: Path, markdown: str) -> bool:
        if check:
            if not path.is_file() or path.read_text() != markdown:
                touched.append(str(path))
            return False
        with replacing(path) as tmp:
            tmp.write_text(markdown)
        touched.append(str(path))
        return images

    for dataset in names:
        if inputs.result_files(results_dir, dataset, robustness.PROTOCOL):
            plot = f"robustness-{dataset}.png"
            markdown, rows = robustness.render(dataset, results_dir, image=plot if images else None, skip_invalid=True)
            if write(out_dir / f"robustness-{dataset}.md", markdown):
                robustness.plot(rows, out_dir / plot, dataset)
    if every and any(inputs.result_files(results_dir, d, transfer.PROTOCOL) for d in names):
        write(out_dir / "transfer.md", transfer.render(results_dir, names, skip_invalid=True)[0])
    return touched


def _write_images(dataset: str, rows: list[dict[str, Any]], folder: Path) -> None:
    """One PNG per row; PNGs of rows that no longer exist are removed."""
    wanted = {_png_name(r): r for r in rows}
    for name, row in wanted.items():
        confusion_png(dataset, row, folder / name)
    if folder.is_dir():
        for old in folder.glob("*--*.png"):
            if old.name not in wanted:
                old.unlink()
