"""Linear probe: L-BFGS logistic regression on frozen, frame-averaged CLIP features.

The CLIP paper's protocol as CoOp's ``lpclip`` implements it: the inverse L2 strength C
is chosen on a validation split by a coarse sweep over ``COARSE_C`` and then
``search_steps`` halving steps in log10 space around the best value; the final
classifier is fitted with that C. The validation split is carved from the TRAINING
fold only (subject-independent when subjects are known), so the test clips never
influence C.
"""

from __future__ import annotations

import math
import warnings
from typing import Any

import numpy as np

from dferbench import DferbenchError

COARSE_C = (1e6, 1e4, 1e2, 1.0, 1e-2, 1e-4, 1e-6)  # lpclip's search list


def validation_split(records: list[Any], val_fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray, str]:
    """Indices ``(fit, val)`` into ``records`` (one training fold) and how they were split.

    ``subject``: stratified by label, grouped by subject (no subject on both sides), when
    every record has a subject and there are enough subjects; ``stratified`` otherwise.
    """
    from sklearn.model_selection import StratifiedGroupKFold, StratifiedKFold

    if not 0.0 < val_fraction < 0.5:
        raise DferbenchError(f"model.val_fraction must be in (0, 0.5), got {val_fraction}")
    labels = np.array([r.label for r in records])
    # sklearn needs some class with at least n_splits clips: tiny folds get a larger share.
    n_splits = max(2, min(round(1.0 / val_fraction), int(np.bincount(labels).max())))
    subjects = [r.subject for r in records]
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="The least populated class")
        if all(s is not None for s in subjects) and len(set(subjects)) >= n_splits:
            splitter = StratifiedGroupKFold(n_splits=n_splits, shuffle=True, random_state=seed)
            fit, val = next(splitter.split(np.zeros(len(labels)), labels, groups=subjects))
            return fit, val, "subject"
        splitter = StratifiedKFold(n_splits=n_splits, shuffle=True, random_state=seed)
        fit, val = next(splitter.split(np.zeros(len(labels)), labels))
    return fit, val, "stratified"


def _fit(x: np.ndarray, y: np.ndarray, c: float, max_iter: int):
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.linear_model import LogisticRegression
    from threadpoolctl import threadpool_limits

    # Below ~1M feature values a BLAS call is microseconds: extra threads only add
    # synchronisation, which costs 5-20x on a busy machine.
    threads = 1 if x.size < 1_000_000 else None
    with warnings.catch_warnings(), threadpool_limits(limits=threads):
        warnings.simplefilter("ignore", ConvergenceWarning)  # expected at the sweep's weak-regularisation end
        return LogisticRegression(C=c, max_iter=max_iter).fit(x, y)


def search_c(x_fit: np.ndarray, y_fit: np.ndarray, x_val: np.ndarray, y_val: np.ndarray, *,
             steps: int = 8, max_iter: int = 1000) -> tuple[float, list[dict[str, float]]]:
    """lpclip's search: the best of ``COARSE_C`` by validation accuracy, then ``steps``
    rounds that score both ends of ``[peak / 10, peak * 10]`` (log10 space), keep the
    better end and halve the interval towards it. Returns the last kept C and the trace."""
    trace: list[dict[str, float]] = []

    def accuracy(c: float) -> float:
        acc = float(np.mean(_fit(x_fit, y_fit, c, max_iter).predict(x_val) == y_val))
        trace.append({"C": c, "val_acc": acc})
        return acc

    coarse = [accuracy(c) for c in COARSE_C]
    chosen = COARSE_C[int(np.argmax(coarse))]  # ties: the weakest regularisation, as np.argmax in lpclip
    left, right = math.log10(chosen) - 1.0, math.log10(chosen) + 1.0
    for _ in range(steps):
        acc_left, acc_right = accuracy(10.0**left), accuracy(10.0**right)
        mid = 0.5 * (left + right)
        if acc_left < acc_right:
            chosen, left = 10.0**right, mid
        else:
            chosen, right = 10.0**left, mid
    return float(chosen), trace


class LinearProbe:
    def __init__(self, ctx):
        from dferbench import create_clip, weights_digest

        self.ctx = ctx
        clip, _ = create_clip(ctx.options["clip_model"], ctx.options["pretrained"] or None, device=ctx.device)
        self.visual = clip.visual.eval()
        self.weights_id = weights_digest(self.visual)
        self.classifier = None

    def features(self, clips) -> np.ndarray:
        from dferbench_plugins.baselines.common import frozen_features

        x = frozen_features(self.visual, clips, self.ctx, self.weights_id)  # [N, E]
        if self.ctx.options["l2_normalize"]:
            x = x / np.linalg.norm(x, axis=1, keepdims=True).clip(min=1e-12)
        return x

    def fit(self, train, monitor) -> dict[str, Any]:
        # monitor.test_clips (best_on_test) is deliberately unused: there are no epochs to
        # select, and C is chosen on the training fold alone.
        from dferbench import require_training_clips

        require_training_clips(train)
        o = self.ctx.options
        x, y = self.features(train), train.labels
        fit_idx, val_idx, how = validation_split(train.records, o["val_fraction"], self.ctx.seed)
        c, trace = search_c(x[fit_idx], y[fit_idx], x[val_idx], y[val_idx], steps=o["search_steps"],
                            max_iter=o["max_iter"])
        final = (x, y) if o["refit_on_full_train"] else (x[fit_idx], y[fit_idx])
        self.classifier = _fit(*final, c, o["max_iter"])
        return {"C": c, "val_split": how, "n_fit": len(fit_idx), "n_val": len(val_idx),
                "val_acc": max(t["val_acc"] for t in trace if t["C"] == c), "c_search": trace,
                "n_iter": int(np.max(self.classifier.n_iter_))}

    def predict(self, clips) -> np.ndarray:
        if self.classifier is None:
            raise DferbenchError("linear-probe: predict() before fit()")
        scores = self.classifier.decision_function(self.features(clips))
        if scores.ndim == 1:  # two classes seen in training: sklearn returns one margin
            scores = np.stack([-scores, scores], axis=1)
        out = np.full((len(scores), len(self.ctx.classes)), -1e9, dtype=np.float32)
        out[:, self.classifier.classes_] = scores  # a class absent from training is never predicted
        return out
