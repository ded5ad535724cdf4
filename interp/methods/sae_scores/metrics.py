"""Metrics of head scores against a ground truth, thin wrappers over scikit-learn and scipy
that keep this package's conventions: ``(scores, truth)`` argument order, NaN (not an exception
or a warning) when a metric is undefined."""

from __future__ import annotations

import time

import numpy as np
from jaxtyping import Bool, Float, Real


def roc_auc(scores: Real[np.ndarray, " heads"], truth: Bool[np.ndarray, " heads"]) -> float:
    """Area under the ROC curve; tied scores count half (Mann-Whitney with midranks, which is
    what ``sklearn.metrics.roc_auc_score`` computes). NaN when one class is empty."""
    from sklearn.metrics import roc_auc_score

    truth = np.asarray(truth, dtype=bool)
    if truth.all() or not truth.any():
        return float("nan")
    return float(roc_auc_score(truth, np.asarray(scores, float)))


def roc_curve(
    scores: Real[np.ndarray, " heads"], truth: Bool[np.ndarray, " heads"]
) -> tuple[Float[np.ndarray, " points"], Float[np.ndarray, " points"]]:
    """``(fpr, tpr)`` from (0, 0) over every distinct threshold, tied scores taken together."""
    from sklearn.metrics import roc_curve as _roc_curve

    fpr, tpr, _ = _roc_curve(
        np.asarray(truth, dtype=bool), np.asarray(scores, float), drop_intermediate=False
    )
    return fpr, tpr


def spearman(a: Real[np.ndarray, " n"], b: Real[np.ndarray, " n"]) -> float:
    """Spearman rank correlation (``scipy.stats.spearmanr``); NaN if either is constant."""
    from scipy.stats import spearmanr

    a, b = np.asarray(a, float), np.asarray(b, float)
    if np.ptp(a) == 0 or np.ptp(b) == 0:  # scipy also gives NaN, with a warning
        return float("nan")
    return float(spearmanr(a, b).statistic)


def best_f1(
    scores: Real[np.ndarray, " heads"], truth: Bool[np.ndarray, " heads"]
) -> dict[str, float]:
    """Precision and recall at the score threshold with the best F1 (the lowest such threshold
    on ties; F1 0 and threshold inf when no threshold finds a true head)."""
    from sklearn.metrics import precision_recall_curve

    truth = np.asarray(truth, dtype=bool)
    best = {"f1": 0.0, "precision": 0.0, "recall": 0.0, "threshold": float("inf")}
    if not truth.any():
        return best
    # thresholds ascending; the last (precision, recall) = (1, 0) point has no threshold
    prec, rec, thr = precision_recall_curve(truth, np.asarray(scores, float))
    prec, rec = prec[:-1], rec[:-1]
    with np.errstate(divide="ignore", invalid="ignore"):
        f1 = np.where(prec + rec > 0, 2 * prec * rec / (prec + rec), 0.0)
    k = int(np.argmax(f1))
    if f1[k] > 0:
        best = {
            "f1": float(f1[k]),
            "precision": float(prec[k]),
            "recall": float(rec[k]),
            "threshold": float(thr[k]),
        }
    return best


def top_fraction(effects: Float[np.ndarray, " heads"], frac: float) -> Bool[np.ndarray, " heads"]:
    """Ground-truth circuit: the ``ceil(frac * heads)`` heads with the largest ``effects``."""
    k = max(1, int(np.ceil(frac * len(effects))))
    truth = np.zeros(len(effects), dtype=bool)
    truth[np.argsort(-np.asarray(effects), kind="stable")[:k]] = True
    return truth


class Timer:
    """``with Timer() as t: ...; t.seconds``."""

    def __enter__(self) -> Timer:
        self.t0 = time.perf_counter()
        return self

    def __exit__(self, *exc: object) -> None:
        self.seconds = time.perf_counter() - self.t0
