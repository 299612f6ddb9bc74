"""UAR, WAR and friends, in percent like the DFER papers. Pure functions over class ids."""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np
from sklearn.metrics import accuracy_score, balanced_accuracy_score, confusion_matrix


def uar(y_true: Any, y_pred: Any) -> float:
    """Unweighted average recall: the mean of per-class recalls (classes present in
    ``y_true``), in percent. ``y_true``, ``y_pred``: class ids ``[N]``."""
    with warnings.catch_warnings():  # predicting a class absent from y_true is fine here
        warnings.simplefilter("ignore", UserWarning)
        return 100.0 * float(balanced_accuracy_score(y_true, y_pred))


def war(y_true: Any, y_pred: Any) -> float:
    """Weighted average recall: plain accuracy over all clips, in percent."""
    return 100.0 * float(accuracy_score(y_true, y_pred))


def confusion(y_true: Any, y_pred: Any, n_classes: int) -> np.ndarray:
    """Counts ``[n_classes, n_classes]``: row = true class, column = predicted class."""
    return confusion_matrix(y_true, y_pred, labels=list(range(n_classes)))


def per_class_recall(y_true: Any, y_pred: Any, n_classes: int) -> list[float | None]:
    """Recall of each class in percent; None for a class absent from ``y_true``."""
    cm = confusion(y_true, y_pred, n_classes)
    support = cm.sum(axis=1)
    return [100.0 * cm[c, c] / support[c] if support[c] else None for c in range(n_classes)]


def compute_metrics(y_true: Any, logits: Any) -> dict[str, Any]:
    """Metrics of logits ``[N, C]`` against class ids ``[N]`` (fixed keys)."""
    logits = np.asarray(logits)
    if logits.ndim != 2 or len(logits) != len(y_true):
        raise ValueError(f"logits must be [N={len(y_true)}, C], got shape {logits.shape}")
    if not np.isfinite(logits).all():
        raise ValueError("logits contain NaN or infinity: the model diverged or read bad input")
    n_classes = logits.shape[1]
    y_pred = logits.argmax(axis=1)
    return {
        "uar": uar(y_true, y_pred),
        "war": war(y_true, y_pred),
        "per_class_recall": per_class_recall(y_true, y_pred, n_classes),
        "confusion": confusion(y_true, y_pred, n_classes).tolist(),
    }
