"""Intervals and tests for UAR and WAR: a clip bootstrap, a paired permutation test, rows of units.

Every number is in percent (points), like the leaderboards.

What is resampled, and why
--------------------------
A DFER test split is fixed by the dataset: the test clips of fold k, and so their class
counts, are given. The uncertainty in a UAR is that of which clips of each class the split
happened to draw. The bootstrap is therefore *stratified by class*: a resample draws, for
each class, as many clips as the class has, with replacement, from that class's clips.
Class counts stay fixed, so every class stays present (UAR stays defined, each recall keeps
its denominator) and the interval is that of a test set with the split's composition.
For a row (all units of a (model, dataset) pair) the strata are (fold, class): each fold's
test clips are resampled within that fold, with one draw shared by every seed of the fold
(they score the same clips), and the statistic is the row's number, the mean over units.

These intervals condition on the trained models: they say how far the number would move on
another test sample of the same composition, not on retraining. With several seeds the seed
noise is averaged in the row's number but not resampled; :func:`variance_components` gives
the spread over seeds separately. Intervals are bootstrap percentile intervals.

How well they hold (simulated predictions with a known true UAR, tests/test_stats.py): a
95% interval covered the truth in 94.4% (WAR: 94.8%) of 10,000 simulations of a 560-clip,
7-class test set whose smallest class has 30 clips. Classes of a few clips make it too narrow: about
91-92% on 80-clip folds with classes of 2 and 6 clips (the synthetic benchmark's shape),
because a class whose few clips are all right (or all wrong) resamples with no spread.
The permutation test below is exact whatever the class sizes.

How it is computed
------------------
UAR, WAR, a per-class recall, a row's mean over units and the difference of two rows are
all sums over test clips of a fixed weight times "this clip was classified correctly" (in
UAR a clip of class c weighs ``100 / (n_classes * n_c)``). A resample only changes how often
each clip counts, so all resamples are one product ``counts [R, N] @ contributions [N, K]``,
the counts coming from one ``bincount`` of (resample, draw) codes per stratum. The paired
permutation test flips the sign of each clip's a-minus-b contribution: ``signs [R, N] @ d
[N]``. No Python loop runs over resamples; memory is ``R x`` (clips of the largest stratum).

Every such product goes through :func:`_weighted_sums`, which gives the same bits on every
CPU, BLAS build and thread count (a plain float matmul sums in an order that depends on
them, and one last bit can flip a printed digit where a number sits on a rounding
boundary, as rationals with small denominators often do): committed leaderboards are
compared byte for byte.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Mapping, Sequence

import numpy as np

from dferbench.errors import DferbenchError, unknown_name

METRICS = ("uar", "war")


@dataclass(frozen=True, eq=False)
class Unit:
    """The test predictions of one unit (one fold, one seed).

    ``y_true``, ``y_pred``: class ids ``[N]``. ``clip_ids``: the ``N`` test clips' names; with
    them, units of one fold are matched clip by clip in any order; without them, the units of
    one fold must list the same clips in the same order.
    """

    fold: int
    seed: int
    y_true: np.ndarray
    y_pred: np.ndarray
    clip_ids: tuple[str, ...] | None = None

    def __post_init__(self) -> None:
        where = f"fold {self.fold} seed {self.seed}"
        y_true, y_pred = np.asarray(self.y_true), np.asarray(self.y_pred)
        if y_true.ndim != 1 or y_true.shape != y_pred.shape or not len(y_true):
            raise DferbenchError(f"{where}: y_true and y_pred must be class ids of the same length N > 0, "
                                 f"got shapes {y_true.shape} and {y_pred.shape}")
        for name, y in (("y_true", y_true), ("y_pred", y_pred)):
            if not np.issubdtype(y.dtype, np.integer) or y.min() < 0:
                raise DferbenchError(f"{where}: {name} must hold class ids (integers >= 0), got {y.dtype} "
                                     f"with minimum {y.min()}")
        object.__setattr__(self, "y_true", y_true.astype(np.int64))
        object.__setattr__(self, "y_pred", y_pred.astype(np.int64))
        if self.clip_ids is not None:
            ids = tuple(str(c) for c in self.clip_ids)
            if len(ids) != len(y_true):
                raise DferbenchError(f"{where}: {len(ids)} clip ids for {len(y_true)} predictions")
            if len(set(ids)) != len(ids):
                raise DferbenchError(f"{where}: clip ids repeat (each test clip must be scored once)")
            object.__setattr__(self, "clip_ids", ids)


@dataclass(frozen=True)
class PairedTest:
    """Method a against method b on the same test clips (and units)."""

    a: float  #: a's score, percent
    b: float  #: b's score, percent
    difference: float  #: a minus b, points
    ci: tuple[float, float]  #: interval of the difference, points
    p_value: float  #: two-sided, of "a and b are exchangeable on every clip"
    n_resamples: int
    method: str


@dataclass(frozen=True)
class VarianceComponents:
    """The spread of a row's per-unit scores (points, standard deviations) by source."""

    total_sd: float | None  #: sample SD over all units (ddof 1), the leaderboard's ``±``
    fold_sd: float | None  #: between folds; includes seed noise when there is one seed per fold
    seed_sd: float | None  #: between seeds of one fold; None where no fold has two seeds
    n_folds: int
    n_units: int
    note: str


@dataclass(frozen=True)
class RowIntervals:
    """What :func:`row_intervals` gives for one row (percent; the rank among the rows given)."""

    uar: tuple[float, float]
    war: tuple[float, float]
    recall: list[tuple[float, float, float] | None]  #: per class (recall, low, high); None: no test clip
    rank: tuple[int, int]  #: (best, worst) UAR rank, 1 = highest


@dataclass(frozen=True)
class Versus:
    """One comparison of :func:`against_all`: ``test`` is reference minus ``name``."""

    name: str
    test: PairedTest | None
    p_holm: float | None  #: Holm-adjusted over the comparisons made
    skipped: str | None = None  #: why no test was made (units that cannot be paired)


class _Clips:
    """The test clips scored by some unit of some row, in one column order.

    Columns run fold by fold (ascending) and, within a fold, by clip id (or in the units'
    order where they carry none). ``strata`` holds the columns of each (fold, class);
    ``rows[name]`` the aligned ``(columns, correct)`` of each unit of a row.
    """

    def __init__(self, rows: Mapping[str, Sequence[Unit]]):
        by_fold: dict[int, list[tuple[str, Unit]]] = {}
        for name, units in rows.items():
            if not units:
                raise DferbenchError(f"{name}: no units to score")
            seen = set()
            for unit in units:
                if (unit.fold, unit.seed) in seen:
                    raise DferbenchError(f"{name}: two units for fold {unit.fold} seed {unit.seed}")
                seen.add((unit.fold, unit.seed))
                by_fold.setdefault(unit.fold, []).append((name, unit))
        self.rows: dict[str, list[tuple[slice, np.ndarray]]] = {name: [] for name in rows}
        labels, self.strata, start = [], [], 0
        for fold in sorted(by_fold):
            members = by_fold[fold]
            y, orders = self._align(fold, members)
            cols = slice(start, start + len(y))
            for (name, unit), order in zip(members, orders):
                self.rows[name].append((cols, unit.y_pred[order] == y))
            labels.append(y)
            self.strata += [start + np.flatnonzero(y == c) for c in np.unique(y)]
            start += len(y)
        self.labels = np.concatenate(labels)
        self.n = start

    @staticmethod
    def _align(fold: int, members: list[tuple[str, Unit]]) -> tuple[np.ndarray, list[np.ndarray]]:
        """The fold's labels in column order, and for each unit the order that aligns it."""
        first_name, first = members[0]
        with_ids = all(unit.clip_ids is not None for _, unit in members)
        ref = np.sort(np.asarray(first.clip_ids)) if with_ids else None
        orders = []
        for name, unit in members:
            where = f"{name} fold {fold} seed {unit.seed}"
            if with_ids:
                order = np.argsort(np.asarray(unit.clip_ids), kind="stable")
                ids = np.asarray(unit.clip_ids)[order]
                if len(ids) != len(ref) or not np.array_equal(ids, ref):
                    here, there = set(ids.tolist()), set(ref.tolist())
                    odd = [f"{c!r} only here" for c in sorted(here - there)[:1]]
                    odd += [f"{c!r} only in the other" for c in sorted(there - here)[:1]]
                    raise DferbenchError(
                        f"{where} scores other test clips than {first_name} fold {fold} seed {first.seed} "
                        f"({len(here ^ there)} clips in one only, e.g. {', '.join(odd)}): "
                        f"compare units of the same split")
            elif len(unit.y_true) != len(first.y_true):
                raise DferbenchError(f"{where} has {len(unit.y_true)} test clips, {first_name} fold {fold} seed "
                                     f"{first.seed} has {len(first.y_true)}: compare units of the same split")
            else:
                order = np.arange(len(unit.y_true))
            orders.append(order)
        y = first.y_true[orders[0]]
        for (name, unit), order in zip(members, orders):
            if not np.array_equal(unit.y_true[order], y):
                raise DferbenchError(f"{name} fold {fold} seed {unit.seed}: the labels of "
                                     f"{int(np.sum(unit.y_true[order] != y))} test clips differ from "
                                     f"{first_name} fold {fold} seed {first.seed}: compare units of the same split")
        return y, orders

    def contributions(self, name: str, metric: str) -> np.ndarray:
        """Per-clip contributions ``[N]`` whose sum is the row's metric (mean over its units)."""
        units = self.rows[name]
        out = np.zeros(self.n)
        for cols, correct in units:
            y = self.labels[cols]
            if metric == "war":
                weight = 100.0 / len(y)
            else:
                counts = np.bincount(y)
                weight = 100.0 / (np.count_nonzero(counts) * counts[y])
            out[cols] += weight * correct / len(units)
        return out

    def recall_contributions(self, name: str, n_classes: int) -> np.ndarray:
        """``[N, n_classes]``: column c sums to the row's recall of class c (mean over the
        units whose test clips contain c; zero where none do)."""
        units = self.rows[name]
        out = np.zeros((self.n, n_classes))
        having = np.zeros(n_classes)
        for cols, correct in units:
            y = self.labels[cols]
            counts = np.bincount(y, minlength=n_classes)
            having += counts > 0
            out[np.arange(cols.start, cols.stop), y] += 100.0 * correct / counts[y]
        return out / np.maximum(having, 1)

    def bootstrap(self, values: np.ndarray, n_resamples: int, rng: np.random.Generator) -> np.ndarray:
        """Stratified resamples of the sums of ``values [N, K]``: ``[n_resamples, K]``."""
        out = np.zeros((n_resamples, values.shape[1]))
        offsets = np.arange(n_resamples)[:, None]
        for cols in self.strata:
            n = len(cols)
            draws = rng.integers(0, n, size=(n_resamples, n))
            counts = np.bincount((draws + n * offsets).ravel(), minlength=n_resamples * n)
            out += _weighted_sums(counts.reshape(n_resamples, n).astype(np.float64), values[cols])
        return out


def _weighted_sums(counts: np.ndarray, values: np.ndarray) -> np.ndarray:
    """``counts [R, n] @ values [n, K]`` for integer-valued ``counts``, bit-identical everywhere.

    Each column's distinct values are tallied exactly (``counts @ one-hot`` holds only
    integers below 2**53, so any summation order gives the same result), then summed value
    by value in ascending order with elementwise arithmetic: the same operations in the
    same order on every machine. Contributions take few distinct values per column (one
    weight per fold and class of a stratum), so the one-hot matrix stays small.
    """
    live = np.flatnonzero(values.any(axis=0))  # a column of zeros sums to exactly zero
    out = np.zeros((len(counts), values.shape[1]))
    if len(values) == 0 or len(live) == 0:
        return out
    values = values[:, live]
    n, k = values.shape
    order = np.argsort(values, axis=0, kind="stable")
    ascending = np.take_along_axis(values, order, axis=0)
    rank = np.cumsum(np.vstack([np.zeros((1, k), bool), ascending[1:] != ascending[:-1]]), axis=0)  # [n, K]
    m = int(rank.max()) + 1  # most distinct values in a column
    table = np.zeros((k, m))  # [K, m]: each column's distinct values, ascending, zero-padded
    table[np.arange(k)[None, :], rank] = ascending
    code = np.empty_like(rank)
    np.put_along_axis(code, order, rank, axis=0)
    onehot = np.zeros((n, k * m))
    onehot[np.arange(n)[:, None], np.arange(k) * m + code] = 1.0
    tallies = (counts @ onehot).reshape(len(counts), k, m)  # exact integers
    sums = np.zeros((len(counts), k))
    for j in range(m):  # a padded value has no tally and adds an exact zero
        sums += table[:, j] * tallies[:, :, j]
    out[:, live] = sums
    return out


def _total(values: np.ndarray) -> np.ndarray:
    """Column sums ``[K]`` of ``values [n, K]``, in the same order of operations as a resample."""
    return _weighted_sums(np.ones((1, len(values))), values)[0]


def score(y_true: Sequence[int], y_pred: Sequence[int], metric: str = "uar") -> float:
    """UAR or WAR in percent of one prediction set (class ids ``[N]``): the numbers of
    :func:`dferbench.report.metrics.uar` and ``war``, in numpy alone, so that reports that
    only read predictions never import scikit-learn (a second of start-up)."""
    _check_metric(metric)
    y_true, y_pred = np.asarray(y_true), np.asarray(y_pred)
    correct = y_true == y_pred
    if metric == "war":
        return 100.0 * float(correct.mean())
    support = np.bincount(y_true)
    hits = np.bincount(y_true[correct], minlength=len(support))
    present = support > 0
    return 100.0 * float((hits[present] / support[present]).mean())


def _check_metric(metric: str) -> None:
    if metric not in METRICS:
        raise unknown_name("metric", metric, METRICS)


def _check(metric: str, n_resamples: int, confidence: float) -> None:
    _check_metric(metric)
    if not isinstance(n_resamples, (int, np.integer)) or n_resamples < 1:
        raise DferbenchError(f"n_resamples must be a positive integer, got {n_resamples!r}")
    if not 0 < confidence < 1:
        raise DferbenchError(f"confidence must lie strictly between 0 and 1 (e.g. 0.95), got {confidence!r}")


def _percentiles(draws: np.ndarray, confidence: float) -> np.ndarray:
    """``[2, ...]``: the percentile interval of ``draws`` along axis 0."""
    tail = (1 - confidence) / 2
    return np.quantile(draws, [tail, 1 - tail], axis=0)


def _rngs(seed: int) -> tuple[np.random.Generator, np.random.Generator]:
    """Independent streams for the bootstrap and the permutations."""
    return tuple(np.random.default_rng(s) for s in np.random.SeedSequence(seed).spawn(2))


def _permutation_p(diff: np.ndarray, n_resamples: int, rng: np.random.Generator) -> float:
    """Two-sided p of ``diff.sum()`` under random sign flips of its entries ``[N]``.

    ``(1 + #{|flipped| >= |observed|}) / (1 + n_resamples)``: the Monte Carlo permutation
    p-value, valid at every ``n_resamples`` (Phipson & Smyth 2010)."""
    d = diff[diff != 0]  # a zero contribution flips to itself
    observed = abs(_total(d[:, None])[0])
    signs = 1.0 - 2.0 * rng.integers(0, 2, size=(n_resamples, len(d)), dtype=np.int8)
    flipped = np.abs(_weighted_sums(signs, d[:, None])[:, 0])
    tolerance = 1e-9 * max(1.0, observed)  # equal sums added in another order
    return float((1 + np.count_nonzero(flipped >= observed - tolerance)) / (1 + n_resamples))


def row_interval(units: Sequence[Unit], metric: str = "uar", n_resamples: int = 1000, confidence: float = 0.95,
                 seed: int = 0) -> tuple[float, float]:
    """Interval ``(low, high)`` in percent of a row's number: ``metric`` averaged over ``units``.

    Resamples within each fold's test clips, stratified by class, with the same draw for
    every seed of a fold (the module docstring says why). Units of one fold must score the
    same clips (matched by clip id when given), else DferbenchError.
    """
    _check(metric, n_resamples, confidence)
    clips = _Clips({"row": units})
    draws = clips.bootstrap(clips.contributions("row", metric)[:, None], n_resamples, _rngs(seed)[0])
    low, high = _percentiles(draws[:, 0], confidence)
    return float(low), float(high)


def bootstrap_ci(y_true: Sequence[int], y_pred: Sequence[int], metric: str = "uar", n_resamples: int = 1000,
                 confidence: float = 0.95, seed: int = 0) -> tuple[float, float]:
    """Interval ``(low, high)`` in percent of UAR or WAR of one prediction set.

    ``y_true``, ``y_pred``: class ids ``[N]``. Stratified bootstrap: each resample draws each
    class's clips with replacement, keeping every class's count, because the test split is
    fixed by the dataset and its composition is not random; with fixed counts every class
    stays present and UAR keeps its per-class denominators. Percentile interval.
    """
    return row_interval([Unit(0, 0, y_true, y_pred)], metric, n_resamples, confidence, seed)


def paired_row_test(units_a: Sequence[Unit], units_b: Sequence[Unit], metric: str = "uar", n_resamples: int = 1000,
                    confidence: float = 0.95, seed: int = 0) -> PairedTest:
    """Row a against row b, both scored on the same units (same folds, seeds and test clips).

    ``difference``: a's number minus b's (each the mean of ``metric`` over its units).
    ``p_value``: paired permutation test. Under the null that a's and b's predictions are
    exchangeable on each clip, swapping them leaves the joint distribution unchanged, so the
    test is exact: the difference is recomputed with the predictions of each (fold, clip)
    swapped at random, for all seeds of the fold at once (the seeds score the same clip; one
    swap per clip needs exchangeability only of the clip's whole set of predictions), and
    ``p = (1 + #{|swapped| >= |observed|}) / (1 + n_resamples)``, two-sided. No normal
    approximation and no assumption about how the clips' differences are distributed.
    ``ci``: the stratified paired bootstrap percentile interval of the difference (one draw
    of clips for both rows). The test and the interval can disagree near the boundary; the
    p-value is the test. Units are matched by (fold, seed); a unit without a partner raises
    DferbenchError, as do units of one fold that score different clips.
    """
    _check(metric, n_resamples, confidence)
    clips, a, b = _paired(units_a, units_b, metric)
    boot_rng, perm_rng = _rngs(seed)
    draws = clips.bootstrap((a - b)[:, None], n_resamples, boot_rng)
    low, high = _percentiles(draws[:, 0], confidence)
    return PairedTest(
        a=float(_total(a[:, None])[0]), b=float(_total(b[:, None])[0]), difference=float(_total((a - b)[:, None])[0]),
        ci=(float(low), float(high)),
        p_value=_permutation_p(a - b, n_resamples, perm_rng), n_resamples=n_resamples,
        method=f"paired permutation test ({n_resamples} random swaps of a/b per test clip, all seeds of its fold "
               f"together; two-sided); "
               f"{confidence:.0%} interval: stratified paired bootstrap, percentile")


def _paired(units_a: Sequence[Unit], units_b: Sequence[Unit], metric: str) -> tuple[_Clips, np.ndarray, np.ndarray]:
    """The clips of two rows scored on the same units, and each row's contributions ``[N]``."""
    keys_a = {(u.fold, u.seed) for u in units_a}
    keys_b = {(u.fold, u.seed) for u in units_b}
    if keys_a != keys_b:
        alone = sorted((k, "a") for k in keys_a - keys_b) + sorted((k, "b") for k in keys_b - keys_a)
        listed = ", ".join(f"fold {f} seed {s} only in {side}" for (f, s), side in alone[:4])
        raise DferbenchError(f"the two rows are not scored on the same units ({listed}"
                             f"{', ...' if len(alone) > 4 else ''}): run the missing units or compare other rows")
    clips = _Clips({"a": units_a, "b": units_b})
    return clips, clips.contributions("a", metric), clips.contributions("b", metric)


def paired_p_value(units_a: Sequence[Unit], units_b: Sequence[Unit], metric: str = "uar", n_resamples: int = 1000,
                   seed: int = 0) -> float:
    """The ``p_value`` of :func:`paired_row_test` with the same arguments, bit for bit, without
    the bootstrap interval of the difference (for many tests where only the p-value is shown)."""
    _check(metric, n_resamples, 0.95)
    _, a, b = _paired(units_a, units_b, metric)
    return _permutation_p(a - b, n_resamples, _rngs(seed)[1])


def paired_test(y_true: Sequence[int], pred_a: Sequence[int], pred_b: Sequence[int], metric: str = "uar",
                n_resamples: int = 1000, confidence: float = 0.95, seed: int = 0) -> PairedTest:
    """Method a against method b scored on the same clips: ``y_true``, ``pred_a``, ``pred_b``
    class ids ``[N]``. The difference is a minus b in points; see :func:`paired_row_test`."""
    return paired_row_test([Unit(0, 0, y_true, pred_a)], [Unit(0, 0, y_true, pred_b)], metric, n_resamples,
                           confidence, seed)


def per_class_recall_ci(units: Sequence[Unit], n_classes: int, n_resamples: int = 1000, confidence: float = 0.95,
                        seed: int = 0) -> list[tuple[float, float, float] | None]:
    """Per class: ``(recall, low, high)`` in percent, or None for a class no unit's test clips
    contain. A row's recall of class c is the mean over the units that contain c; resampled
    like :func:`row_interval` (a class of a few clips gets a wide, coarse interval)."""
    _check("uar", n_resamples, confidence)  # the metric is recall here; only the resampling is checked
    clips = _Clips({"row": units})
    if clips.labels.max() >= n_classes:
        raise DferbenchError(f"class id {clips.labels.max()} in the test labels, but n_classes is {n_classes}")
    values = clips.recall_contributions("row", n_classes)
    low, high = _percentiles(clips.bootstrap(values, n_resamples, _rngs(seed)[0]), confidence)
    present = np.bincount(clips.labels, minlength=n_classes) > 0
    recall = _total(values)
    return [(float(recall[c]), float(low[c]), float(high[c])) if present[c] else None for c in range(n_classes)]


def rank_intervals(rows: Mapping[str, Sequence[Unit]], metric: str = "uar", n_resamples: int = 1000,
                   confidence: float = 0.95, seed: int = 0) -> dict[str, tuple[int, int]]:
    """Per row: ``(best, worst)`` rank (1 = highest ``metric``) over the bootstrap.

    One stratified draw of clips per resample is shared by every row, so each resample ranks
    all rows on the same test sample; ties take the better rank. Rows may cover different
    units, but rows that score a fold must score the same clips on it.
    """
    _check(metric, n_resamples, confidence)
    clips = _Clips(rows)
    values = np.stack([clips.contributions(name, metric) for name in rows], axis=1)
    draws = clips.bootstrap(values, n_resamples, _rngs(seed)[0])  # [R, rows]
    return dict(zip(rows, _rank_interval(draws, confidence)))


def _rank_interval(draws: np.ndarray, confidence: float) -> list[tuple[int, int]]:
    """Per column of ``draws [R, rows]``: the ``(best, worst)`` rank interval; ties take the better rank."""
    ranks = 1 + (draws[:, None, :] > draws[:, :, None]).sum(axis=2)  # [R, rows]: rows scoring higher, plus one
    tail = (1 - confidence) / 2
    best = np.quantile(ranks, tail, axis=0, method="lower")
    worst = np.quantile(ranks, 1 - tail, axis=0, method="higher")
    return [(int(lo), int(hi)) for lo, hi in zip(best, worst)]


def row_intervals(rows: Mapping[str, Sequence[Unit]], n_classes: int, n_resamples: int = 1000,
                  confidence: float = 0.95, seed: int = 0) -> dict[str, RowIntervals]:
    """What a leaderboard shows of each row, from one stratified draw of clips shared by all rows.

    Per row: the intervals of :func:`row_interval` (UAR and WAR), :func:`per_class_recall_ci`
    and the UAR rank of :func:`rank_intervals` among ``rows``. Rows that score a fold must
    score the same clips on it. Where the rows score the same folds, each number is the one
    those functions give row by row with the same seed, bit for bit (the draws depend only
    on the clips, and each column is summed on its own); here the clips are drawn once.
    """
    _check("uar", n_resamples, confidence)
    clips = _Clips(rows)
    if clips.labels.max() >= n_classes:
        raise DferbenchError(f"class id {clips.labels.max()} in the test labels, but n_classes is {n_classes}")
    blocks = [np.column_stack([clips.contributions(name, "uar"), clips.contributions(name, "war"),
                               clips.recall_contributions(name, n_classes)]) for name in rows]
    values = np.concatenate(blocks, axis=1)  # [N, rows x (2 + n_classes)]
    draws = clips.bootstrap(values, n_resamples, _rngs(seed)[0]).reshape(n_resamples, len(rows), 2 + n_classes)
    low, high = _percentiles(draws, confidence)  # [rows, 2 + n_classes] each
    ranks = _rank_interval(draws[:, :, 0], confidence)
    present = np.bincount(clips.labels, minlength=n_classes) > 0
    out = {}
    for r, name in enumerate(rows):
        recall = _total(blocks[r][:, 2:])
        out[name] = RowIntervals(
            (float(low[r, 0]), float(high[r, 0])), (float(low[r, 1]), float(high[r, 1])),
            [(float(recall[c]), float(low[r, 2 + c]), float(high[r, 2 + c])) if present[c] else None
             for c in range(n_classes)], ranks[r])
    return out


def holm(p_values: Sequence[float]) -> list[float]:
    """Holm's step-down adjusted p-values, in the input order.

    The i-th smallest of m p-values becomes ``max over j <= i of min(1, (m - j + 1) p_(j))``;
    rejecting where the adjusted p < alpha controls the family-wise error rate at alpha
    under any dependence between the tests.
    """
    p = np.asarray(p_values, dtype=float)
    order = np.argsort(p, kind="stable")
    scaled = np.minimum(1.0, (len(p) - np.arange(len(p))) * p[order])
    adjusted = np.empty_like(p)
    adjusted[order] = np.maximum.accumulate(scaled)
    return adjusted.tolist()


def against_all(rows: Mapping[str, Sequence[Unit]], reference: str, metric: str = "uar", n_resamples: int = 1000,
                confidence: float = 0.95, seed: int = 0) -> list[Versus]:
    """``reference`` against every other row (:func:`paired_row_test`, reference minus row),
    Holm-adjusted over the tests made. A row whose units cannot be paired with the
    reference's is kept with ``skipped`` saying why, outside the correction. For a
    leaderboard, pass the best row: rows with ``p_holm >= alpha`` are not significantly worse.
    """
    if reference not in rows:
        raise unknown_name("row", reference, rows)
    found: list[Versus] = []
    for name, units in rows.items():
        if name == reference:
            continue
        try:
            found.append(Versus(name, paired_row_test(rows[reference], units, metric, n_resamples, confidence, seed),
                                None))
        except DferbenchError as exc:
            found.append(Versus(name, None, None, skipped=str(exc)))
    tested = [v for v in found if v.test is not None]
    adjusted = dict(zip((v.name for v in tested), holm([v.test.p_value for v in tested])))
    return [Versus(v.name, v.test, adjusted.get(v.name), v.skipped) for v in found]


def variance_components(units: Sequence[Unit], metric: str = "uar") -> VarianceComponents:
    """Split the spread of the per-unit scores into a fold part and a seed part.

    Estimator: one-way random-effects ANOVA with seeds nested in folds, method of moments
    (unbalanced form): ``seed_sd**2`` is the pooled within-fold variance ``MS_within``;
    ``fold_sd**2 = max(0, (MS_between - MS_within) / n0)`` with ``n0 = (N - sum n_f**2 / N)
    / (F - 1)`` (the seeds per fold when balanced). The fold part holds everything that
    differs between folds: training subjects, and the sampling of each fold's test clips.
    With one seed per fold the seed part is not estimable: ``seed_sd`` is None and
    ``fold_sd`` is the plain SD over units, fold and seed noise together; the note says so.
    """
    _check_metric(metric)
    if not units:
        raise DferbenchError("no units to score")
    by_fold: dict[int, list[float]] = {}
    for unit in units:
        by_fold.setdefault(unit.fold, []).append(score(unit.y_true, unit.y_pred, metric))
    groups = [np.asarray(v) for v in by_fold.values()]
    values = np.concatenate(groups)
    n, f = len(values), len(groups)
    total = float(values.std(ddof=1)) if n > 1 else None
    within = sum(float(((g - g.mean()) ** 2).sum()) for g in groups)
    ms_within = within / (n - f) if n > f else None
    if ms_within is None:
        return VarianceComponents(total, total, None, f, n,
                                  "one seed per fold: the seed part is not estimable; fold_sd holds fold and seed "
                                  "noise together" if f > 1 else "a single unit: no spread to split")
    if f == 1:
        return VarianceComponents(total, None, float(np.sqrt(ms_within)), f, n,
                                  "a single fold: the fold part is not estimable")
    ms_between = sum(len(g) * (g.mean() - values.mean()) ** 2 for g in groups) / (f - 1)
    n0 = (n - sum(len(g) ** 2 for g in groups) / n) / (f - 1)
    fold_var = max(0.0, (ms_between - ms_within) / n0)
    return VarianceComponents(total, float(np.sqrt(fold_var)), float(np.sqrt(ms_within)), f, n,
                              "one-way random-effects ANOVA, seeds nested in folds (method of moments)")

