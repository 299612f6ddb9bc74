"""The statistics of leaderboard rows, from their units' predictions (``dferbench.report.stats``).

:func:`annotate` adds to each row of :func:`dferbench.report.leaderboard.aggregate`:

- ``uar_ci``, ``war_ci``: the 95% interval ``(low, high)`` of the number the row reports,
  the mean over its folds and seeds (:func:`stats.row_interval`: stratified bootstrap over
  each fold's test clips);
- ``not_worse_than_best``: against the best row (highest UAR) of the same selection
  policy, the paired permutation test of :func:`stats.paired_row_test` on UAR (the same
  p-values as ``dferbench compare``), with Holm's correction over the tests made:
  ``best``, ``yes`` (not significantly worse at 5%), ``no``, or ``not paired: ...`` for a
  row scored on other units or test clips; ``holm_p_vs_best`` is the adjusted p-value;
- ``rank_interval``: ``(best, worst)`` UAR rank within the policy over the bootstrap,
  among the rows scored on the same test clips as the best row (None for the others, and
  for every row of a policy whose best row has no readable predictions);
- ``_recall``: per class ``(recall, low, high)`` in percent, or None for a class with no
  test clip; ``_spread``: the UAR's :class:`stats.VarianceComponents`;
- ``_stats_note``: why a row got no statistics (its predictions cannot be read), else None.

Every number is seeded and computed in the same order on every machine, so the same
results give the same Markdown byte for byte.
"""

from __future__ import annotations

import hashlib
from typing import Any, Sequence

from dferbench.errors import DferbenchError
from dferbench.report import compare, stats

RESAMPLES = 10000  # bootstrap resamples and permutations per interval or test, as `dferbench compare`
CONFIDENCE = 0.95
ALPHA = 0.05  # level of the "not worse than the best row" test (after Holm)
SEED = 0

Signature = dict[int, str]  # fold -> digest of its test clips and labels


def annotate(rows: list[dict[str, Any]]) -> None:
    """Add the keys listed in the module docstring to every row (rows sorted best first per policy)."""
    from threadpoolctl import threadpool_limits  # a dependency of scikit-learn

    with threadpool_limits(1):  # the products are small: BLAS threads only wait for each other here
        _annotate(rows)


def _annotate(rows: list[dict[str, Any]]) -> None:
    units: dict[int, list[stats.Unit]] = {}
    signatures: dict[int, Signature] = {}
    for i, row in enumerate(rows):
        row.update(uar_ci=None, war_ci=None, not_worse_than_best="-", holm_p_vs_best=None, rank_interval=None,
                   _recall=None, _spread=None, _stats_note=None)
        try:
            units[i] = [compare.read_unit(result) for result in row["units"]]
            signatures[i] = _signature(units[i])
            row["_spread"] = stats.variance_components(units[i], "uar")
        except DferbenchError as exc:
            units.pop(i, None)
            row["_stats_note"] = str(exc)
    for selection in dict.fromkeys(r["selection"] for r in rows):
        policy = [i for i, r in enumerate(rows) if r["selection"] == selection]
        if policy[0] in units:
            _policy(rows, {i: units[i] for i in policy if i in units}, signatures)
        else:  # without the best row's predictions there is nothing to compare with
            for i in policy:
                if i in units:
                    _intervals(rows, {i: units[i]})


def _policy(rows: list[dict[str, Any]], units: dict[int, list[stats.Unit]], signatures: dict[int, Signature]) -> None:
    """Intervals, marks and rank intervals of one selection policy's rows (``units``: best row first)."""
    best, *others = units
    ranked = [best]
    for i in others:
        if _agree(signatures[i], *(signatures[j] for j in ranked)):
            ranked.append(i)
    _intervals(rows, {i: units[i] for i in ranked}, rank=True)
    for i in others:
        if i not in ranked:
            _intervals(rows, {i: units[i]})
    rows[best]["not_worse_than_best"] = "best"
    paired = []
    for i in others:
        if {(u.fold, u.seed) for u in units[i]} != {(u.fold, u.seed) for u in units[best]}:
            rows[i]["not_worse_than_best"] = "not paired: other folds or seeds"
        elif signatures[i] != signatures[best]:
            rows[i]["not_worse_than_best"] = "not paired: other test clips"
        else:
            paired.append(i)
    if not paired:
        return
    p_values = [stats.paired_p_value(units[best], units[i], "uar", RESAMPLES, SEED) for i in paired]
    for i, p in zip(paired, stats.holm(p_values)):
        worse = rows[best]["uar"] > rows[i]["uar"]
        rows[i].update(holm_p_vs_best=p, not_worse_than_best="no" if p < ALPHA and worse else "yes")


def _intervals(rows: list[dict[str, Any]], units: dict[int, list[stats.Unit]], rank: bool = False) -> None:
    """Intervals of rows scored on the same test clips, from one shared draw; with ``rank``, their ranks."""
    n_classes = len(rows[next(iter(units))]["classes"])
    found = stats.row_intervals({str(i): u for i, u in units.items()}, n_classes, RESAMPLES, CONFIDENCE, SEED)
    for name, f in found.items():
        rows[int(name)].update(uar_ci=f.uar, war_ci=f.war, _recall=f.recall,
                               rank_interval=f.rank if rank else None)


def _signature(units: Sequence[stats.Unit]) -> Signature:
    """Per fold, a digest of its test clips and their labels; DferbenchError if the units of a
    fold (its seeds) score different clips."""
    out: Signature = {}
    for unit in units:
        ids = unit.clip_ids or tuple(str(i) for i in range(len(unit.y_true)))
        digest = hashlib.sha256(repr(sorted(zip(ids, unit.y_true.tolist()))).encode()).hexdigest()
        if out.setdefault(unit.fold, digest) != digest:
            raise DferbenchError(f"the seeds of fold {unit.fold} score different test clips (or labels); rerun "
                                 f"the row's units on one split")
    return out


def _agree(signature: Signature, *others: Signature) -> bool:
    """Whether ``signature`` scores every fold it shares with each of ``others`` on the same clips."""
    return all(signature[f] == other[f] for other in others for f in signature.keys() & other.keys())
