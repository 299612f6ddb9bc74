import numpy as np
import pytest
from sklearn.metrics import balanced_accuracy_score, recall_score

from dferbench.report import metrics


def test_hand_computed_case():
    y_true = [0, 0, 0, 0, 1, 1, 2]
    y_pred = [0, 0, 0, 1, 1, 0, 2]
    # recalls: 3/4, 1/2, 1/1 -> UAR 75%; WAR = 5/7
    assert metrics.uar(y_true, y_pred) == pytest.approx(75.0)
    assert metrics.war(y_true, y_pred) == pytest.approx(100 * 5 / 7)
    assert metrics.per_class_recall(y_true, y_pred, 4) == [75.0, 50.0, 100.0, None]
    assert metrics.confusion(y_true, y_pred, 3).tolist() == [[3, 1, 0], [1, 1, 0], [0, 0, 1]]


def test_agrees_with_sklearn_on_random_data():
    rng = np.random.default_rng(0)
    for _ in range(20):
        y_true = rng.integers(0, 7, 200)
        logits = rng.normal(size=(200, 7))
        m = metrics.compute_metrics(y_true, logits)
        y_pred = logits.argmax(1)
        assert m["uar"] == pytest.approx(100 * balanced_accuracy_score(y_true, y_pred))
        assert m["uar"] == pytest.approx(100 * recall_score(y_true, y_pred, average="macro", labels=np.unique(y_true)))
        assert m["war"] == pytest.approx(100 * np.mean(y_true == y_pred))
        assert np.sum(m["confusion"]) == 200


def test_bad_logits_are_rejected():
    with pytest.raises(ValueError, match="NaN"):
        metrics.compute_metrics([0, 1], np.array([[0.0, np.nan], [1.0, 0.0]]))
    with pytest.raises(ValueError, match="shape"):
        metrics.compute_metrics([0, 1, 1], np.zeros((2, 2)))
