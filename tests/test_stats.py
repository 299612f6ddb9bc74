"""Intervals and tests of dferbench.report.stats, proved on simulated predictions with a known truth."""

from __future__ import annotations

import json

import numpy as np
import pytest

from dferbench.report import metrics
from dferbench.errors import DferbenchError
from dferbench.report import compare, stats
from dferbench.run.results import UnitKey, predictions_csv, save_unit

# A 7-class test set with DFEW-like imbalance (560 clips) and each class's probability of
# being classified correctly: the generating process's UAR is exactly 100 * mean(P).
COUNTS = np.array([120, 90, 100, 80, 60, 30, 80])
P = np.array([0.70, 0.40, 0.60, 0.50, 0.55, 0.30, 0.35])


def labels(counts: np.ndarray = COUNTS) -> np.ndarray:
    return np.repeat(np.arange(len(counts)), counts)


def predict(rng: np.random.Generator, y: np.ndarray, p: np.ndarray) -> np.ndarray:
    """Right with probability ``p[class]``, otherwise a uniformly drawn wrong class."""
    correct = rng.random(len(y)) < p[y]
    return np.where(correct, y, (y + rng.integers(1, len(p), len(y))) % len(p))


def coverage(n_sims: int, metric: str, rng: np.random.Generator) -> float:
    y = labels()
    truth = 100 * P.mean() if metric == "uar" else 100 * (P * COUNTS).sum() / COUNTS.sum()
    hits = [low <= truth <= high for low, high in
            (stats.bootstrap_ci(y, predict(rng, y, P), metric, seed=s) for s in range(n_sims))]
    return float(np.mean(hits))


def test_interval_covers_the_true_uar_in_93_to_97_percent_of_400_simulations():
    # The band is the issue's: +-1.8 binomial standard errors of a 400-simulation estimate
    # (the slow test below uses 2000 simulations per metric).
    assert 0.93 <= coverage(400, "uar", np.random.default_rng(0)) <= 0.97


@pytest.mark.slow
@pytest.mark.parametrize("metric", ["uar", "war"])
def test_interval_coverage_over_2000_simulations(metric):
    assert 0.935 <= coverage(2000, metric, np.random.default_rng(1)) <= 0.965


def test_paired_test_rejects_at_most_7_percent_under_the_null():
    rng, y = np.random.default_rng(0), labels()
    p = np.array([stats.paired_test(y, predict(rng, y, P), predict(rng, y, P), seed=s).p_value for s in range(400)])
    assert 0.02 <= np.mean(p < 0.05) <= 0.07  # exact, so near 5%: not far below either


def test_a_real_10_point_gap_is_found():
    rng, y = np.random.default_rng(0), labels(2 * COUNTS)
    tests = [stats.paired_test(y, predict(rng, y, P + 0.05), predict(rng, y, P - 0.05), seed=s) for s in range(40)]
    assert np.mean([t.p_value < 0.05 for t in tests]) >= 0.95
    assert abs(np.mean([t.difference for t in tests]) - 10) < 1
    assert all(t.ci[0] < t.difference < t.ci[1] for t in tests)


def test_identical_predictions_differ_by_nothing():
    rng, y = np.random.default_rng(0), labels()
    pred = predict(rng, y, P)
    t = stats.paired_test(y, pred, pred)
    assert (t.difference, t.ci, t.p_value) == (0.0, (0.0, 0.0), 1.0)


def test_scores_are_the_metrics_and_seeded():
    rng, y = np.random.default_rng(0), labels()
    a, b = predict(rng, y, P), predict(rng, y, P - 0.1)
    for metric, score in (("uar", metrics.uar), ("war", metrics.war)):
        t = stats.paired_test(y, a, b, metric)
        assert t.a == pytest.approx(score(y, a)) and t.b == pytest.approx(score(y, b))
        low, high = stats.bootstrap_ci(y, a, metric)
        assert low < score(y, a) < high
        assert stats.bootstrap_ci(y, a, metric) == (low, high)
        assert stats.bootstrap_ci(y, a, metric, seed=1) != (low, high)
    assert stats.bootstrap_ci(y, a, confidence=0.5)[1] - stats.bootstrap_ci(y, a, confidence=0.5)[0] < high - low


def test_resampled_sums_do_not_depend_on_the_order_of_summation():
    """The sums behind every interval and p-value are the same bits whatever order the clips
    come in (a BLAS matmul's order depends on the CPU, the build and the thread count)."""
    rng = np.random.default_rng(3)
    weights = 100.0 / (7 * np.array([17, 13, 18, 15, 9, 2, 6]) * 3)  # UAR weights of a 3-seed row
    values = np.where(rng.random((400, 4)) < 0.5, 0.0, rng.choice(weights, (400, 4)))
    counts = rng.integers(0, 4, (500, 400)).astype(np.float64)
    sums = stats._weighted_sums(counts, values)
    np.testing.assert_allclose(sums, counts @ values, rtol=1e-12)
    for _ in range(5):
        order = rng.permutation(400)
        assert np.array_equal(stats._weighted_sums(counts[:, order], values[order]), sums)


def test_score_is_that_of_the_metrics_module():
    rng = np.random.default_rng(5)
    for _ in range(20):
        y = rng.integers(0, 7, 60)
        y[y == 3] = 4  # a class absent from the labels but predicted
        pred = np.where(rng.random(60) < 0.4, y, rng.integers(0, 7, 60))
        assert stats.score(y, pred, "uar") == pytest.approx(metrics.uar(y, pred), abs=1e-12)
        assert stats.score(y, pred, "war") == pytest.approx(metrics.war(y, pred), abs=1e-12)


def test_bad_arguments_are_one_line_errors():
    with pytest.raises(DferbenchError, match="Did you mean 'uar'"):
        stats.bootstrap_ci([0, 1], [0, 1], metric="uarr")
    with pytest.raises(DferbenchError, match="same length"):
        stats.bootstrap_ci([0, 1], [0])
    with pytest.raises(DferbenchError, match="class ids"):
        stats.bootstrap_ci([0.5, 1], [0, 1])
    with pytest.raises(DferbenchError, match="confidence"):
        stats.bootstrap_ci([0, 1], [0, 1], confidence=95)


def test_holm_against_a_hand_computed_example():
    # sorted: 0.005 0.01 0.03 0.04 -> x4 x3 x2 x1 = 0.02 0.03 0.06 0.04 -> running max 0.02 0.03 0.06 0.06
    assert stats.holm([0.01, 0.04, 0.03, 0.005]) == pytest.approx([0.03, 0.06, 0.06, 0.02])
    assert stats.holm([0.5, 0.6]) == [1.0, 1.0]
    assert stats.holm([0.02]) == [0.02]


def units_of(rng: np.random.Generator, folds: int, seeds: int = 1, p: np.ndarray = P, counts=COUNTS // 4,
             shuffle: bool = False) -> list[stats.Unit]:
    y = labels(counts)
    ids = np.array([f"c{i:04d}" for i in range(len(y))])
    units = []
    for fold in range(1, folds + 1):
        for seed in range(seeds):
            order = rng.permutation(len(y)) if shuffle else np.arange(len(y))
            clip_ids = tuple(f"f{fold}{i}" for i in ids[order])
            units.append(stats.Unit(fold, seed, y[order], predict(rng, y, p)[order], clip_ids))
    return units


def width(interval: tuple[float, float]) -> float:
    return interval[1] - interval[0]


def test_row_interval_narrows_with_more_folds_and_is_that_of_the_mean_over_units():
    rng = np.random.default_rng(0)
    five = units_of(rng, 5)
    assert width(stats.row_interval(five)) < 0.7 * width(stats.row_interval(five[:2]))
    row = stats.paired_row_test(five, units_of(rng, 5))
    assert row.a == pytest.approx(np.mean([metrics.uar(u.y_true, u.y_pred) for u in five]))
    # seeds of a fold share one draw of clips: a second, identical seed changes nothing
    twins = five + [stats.Unit(u.fold, 7, u.y_true, u.y_pred, u.clip_ids) for u in five]
    assert stats.row_interval(twins) == pytest.approx(stats.row_interval(five))


def test_units_are_matched_by_clip_id_not_by_order():
    rng = np.random.default_rng(0)
    a = units_of(rng, 3)
    b = units_of(rng, 3)
    shuffled = []
    for u in b:
        order = rng.permutation(len(u.y_true))
        clip_ids = tuple(np.array(u.clip_ids)[order])
        shuffled.append(stats.Unit(u.fold, u.seed, u.y_true[order], u.y_pred[order], clip_ids))
    assert stats.paired_row_test(a, shuffled) == stats.paired_row_test(a, b)


def test_mismatched_units_raise():
    rng = np.random.default_rng(0)
    a, b = units_of(rng, 3), units_of(rng, 3)
    with pytest.raises(DferbenchError, match="fold 3 seed 0 only in a"):
        stats.paired_row_test(a, b[:2])
    other = stats.Unit(3, 0, b[2].y_true, b[2].y_pred, ("renamed",) + b[2].clip_ids[1:])
    with pytest.raises(DferbenchError, match="other test clips.*'renamed'"):
        stats.paired_row_test(a, b[:2] + [other])
    relabelled = stats.Unit(3, 0, (b[2].y_true + 1) % 7, b[2].y_pred, b[2].clip_ids)
    with pytest.raises(DferbenchError, match="labels of"):
        stats.paired_row_test(a, b[:2] + [relabelled])
    with pytest.raises(DferbenchError, match="two units for fold 1 seed 0"):
        stats.row_interval(a + a[:1])


def test_per_class_recall_intervals():
    rng = np.random.default_rng(0)
    units = units_of(rng, 2, counts=np.array([40, 30, 20, 0, 10]), p=np.array([0.9, 0.5, 0.3, 0.5, 0.6]))
    found = stats.per_class_recall_ci(units, n_classes=5)
    expected = np.mean([metrics.per_class_recall(u.y_true, u.y_pred, 5)[:3] for u in units], axis=0)
    assert [f[0] for f in found[:3]] == pytest.approx(expected)
    assert found[3] is None  # no test clip of class 3
    assert all(low <= r <= high for r, low, high in found[:3] + found[4:])
    with pytest.raises(DferbenchError, match="n_classes is 3"):
        stats.per_class_recall_ci(units, n_classes=3)


def test_rank_intervals_from_shared_resamples():
    rng = np.random.default_rng(0)
    strong, mid, weak = (units_of(rng, 2, p=P + shift) for shift in (0.25, 0.0, -0.25))
    close = units_of(rng, 2, p=P + 0.01)
    ranks = stats.rank_intervals({"weak": weak, "strong": strong, "mid": mid, "close": close})
    assert ranks["strong"] == (1, 1) and ranks["weak"] == (4, 4)
    assert ranks["mid"] == (2, 3) and ranks["close"] == (2, 3)  # a 1-point gap: their order is not settled


def test_row_intervals_at_once_are_those_row_by_row():
    rng = np.random.default_rng(0)
    rows = {"a": units_of(rng, 2, seeds=2, p=P + 0.1, shuffle=True), "b": units_of(rng, 2, seeds=2),
            "c": units_of(rng, 2, seeds=2, p=P - 0.1)}
    found = stats.row_intervals(rows, n_classes=7, n_resamples=300, seed=4)
    ranks = stats.rank_intervals(rows, n_resamples=300, seed=4)
    for name, units in rows.items():
        assert found[name].uar == stats.row_interval(units, "uar", 300, seed=4)
        assert found[name].war == stats.row_interval(units, "war", 300, seed=4)
        assert found[name].recall == stats.per_class_recall_ci(units, 7, 300, seed=4)
        assert found[name].rank == ranks[name]
    with pytest.raises(DferbenchError, match="n_classes is 5"):
        stats.row_intervals(rows, n_classes=5)
    assert stats.paired_p_value(rows["a"], rows["b"], "war", 300, seed=4) == \
        stats.paired_row_test(rows["a"], rows["b"], "war", 300, seed=4).p_value


def test_against_all_holm_adjusts_and_skips_units_that_cannot_be_paired():
    rng = np.random.default_rng(0)
    rows = {"best": units_of(rng, 3, p=P + 0.2), "same": units_of(rng, 3, p=P + 0.2), "worse": units_of(rng, 3)}
    rows["partial"] = rows["worse"][:2]
    found = {v.name: v for v in stats.against_all(rows, "best")}
    assert found["partial"].test is None and "fold 3 seed 0 only in a" in found["partial"].skipped
    assert found["worse"].p_holm == pytest.approx(stats.holm([found["same"].test.p_value,
                                                             found["worse"].test.p_value])[1])
    assert found["worse"].p_holm < 0.05 <= found["same"].p_holm


def test_variance_components_by_hand():
    y = np.zeros(10, dtype=int)

    def unit(fold: int, seed: int, war: int) -> stats.Unit:
        return stats.Unit(fold, seed, y, (np.arange(10) >= war // 10).astype(int))  # war% of clips right

    scores = {1: (50, 70), 2: (60, 60), 3: (80, 100)}
    units = [unit(f, s, w) for f, ws in scores.items() for s, w in enumerate(ws)]
    v = stats.variance_components(units, "war")
    # within: (200 + 0 + 200) / (6 - 3); between: 2 * (100 + 100 + 400) / 2 = 600; n0 = 2
    assert v.seed_sd == pytest.approx(np.sqrt(400 / 3))
    assert v.fold_sd == pytest.approx(np.sqrt((600 - 400 / 3) / 2))
    assert v.total_sd == pytest.approx(np.std([50, 70, 60, 60, 80, 100], ddof=1))
    one_seed = stats.variance_components([u for u in units if u.seed == 0], "war")
    assert one_seed.seed_sd is None and "not estimable" in one_seed.note
    assert one_seed.fold_sd == one_seed.total_sd == pytest.approx(np.std([50, 60, 80], ddof=1))


def write_row(root, run_name: str, units: list[stats.Unit], dataset: str = "toy", classes: int = 7) -> None:
    for u in units:
        path = UnitKey(run_name, dataset, u.fold, u.seed).path(root)
        logits = np.eye(classes)[u.y_pred]
        result = {"schema": 1, "run_name": run_name, "model": run_name.split("[")[0], "variant": "", "dataset": dataset,
                  "fold": u.fold, "seed": u.seed, "selection": "last_epoch",
                  "uar": round(metrics.uar(u.y_true, u.y_pred), 3), "war": metrics.war(u.y_true, u.y_pred),
                  "classes": [f"k{c}" for c in range(classes)],
                  "confusion": metrics.confusion(u.y_true, u.y_pred, classes).tolist(), "n_test": len(u.y_true),
                  "config_hash": "h" + run_name, "num_frames": 16, "image_size": 224, "normalize": "none"}
        save_unit(path, result, predictions_csv(list(u.clip_ids), u.y_true, logits, [f"k{c}" for c in range(classes)]))


def test_compare_reads_result_folders(tmp_path):
    rng = np.random.default_rng(0)
    a, b = units_of(rng, 3, seeds=2, shuffle=True), units_of(rng, 3, seeds=2, p=P - 0.2)
    write_row(tmp_path, "m[x=1]", a)
    write_row(tmp_path, "base", b)
    write_row(tmp_path, "short", b[:4])
    c = compare.compare(tmp_path, "m[x=1]", "base", "toy")
    assert c.test == stats.paired_row_test(a, b)
    assert (c.n_units, c.n_clips, c.folds[0].seeds) == (6, 3 * len(a[0].y_true), [0, 1])
    assert [f.fold for f in c.folds] == [1, 2, 3]
    assert c.folds[0].difference == pytest.approx(stats.paired_row_test(a[:2], b[:2]).difference)
    text = compare.format_comparison(c)
    assert "difference (m[x=1] - base): +" in text and "m[x=1] is better" in text
    assert len([line for line in text.splitlines() if line.split()[:1] in (["1"], ["2"], ["3"])]) == 3

    r = compare.compare_against_all(tmp_path, "base", "toy")
    text = compare.format_against_all(r)
    assert "base worse" in text and "short: skipped" in text and "Holm's correction over 1 tests" in text

    with pytest.raises(DferbenchError, match="Did you mean 'm\\[x=1\\]'"):
        compare.compare(tmp_path, "m[x=2]", "base", "toy")
    with pytest.raises(DferbenchError, match="not scored on the same units"):
        compare.compare(tmp_path, "base", "short", "toy")
    with pytest.raises(DferbenchError, match="unknown dataset 'toi'"):
        compare.compare(tmp_path, "base", "short", "toi")
    (UnitKey("base", "toy", 2, 1).path(tmp_path).with_suffix(".predictions.csv")).unlink()
    with pytest.raises(DferbenchError, match="fold2-seed1.predictions.csv: missing"):
        compare.compare(tmp_path, "m[x=1]", "base", "toy")
    json_path = UnitKey("short", "toy", 1, 0).path(tmp_path)
    json_path.write_text(json.dumps({**json.loads(json_path.read_text()), "uar": 99.0}))
    with pytest.raises(DferbenchError, match="not from the same run"):
        compare.compare(tmp_path, "m[x=1]", "short", "toy")
