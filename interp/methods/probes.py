"""Linear probes: ridge maps from activations to targets, fitted with scikit-learn.

One penalty convention everywhere: ``alpha`` is relative to the mean eigenvalue of the
centred Gram matrix ``Xc^T Xc`` (``trace / d``), so one value means the same amount of
shrinkage whatever the width or scale of the activations. The intercept is not penalised.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from sklearn.linear_model import Ridge


def fit_ridge(X: Any, Y: Any, alpha: float) -> Ridge:
    """A fitted ``sklearn.linear_model.Ridge`` for ``Y [n, k] ~ X [n, d]`` (float64), with the
    penalty ``alpha * trace(Xc^T Xc) / d``."""
    from sklearn.linear_model import Ridge

    X = _numpy(X)
    Y = _numpy(Y)
    Xc = X - X.mean(0)
    scale = max(float((Xc**2).sum() / X.shape[1]), 1e-12)
    return Ridge(alpha=alpha * scale, fit_intercept=True, solver="cholesky").fit(X, Y)


def ridge_r2(X: np.ndarray, Y: np.ndarray, train: np.ndarray, alpha: float) -> float:
    """R^2 on the rows outside ``train`` (a boolean mask) of a ridge probe fitted on ``train``,
    against the training mean (a probe that predicts nothing scores <= 0)."""
    model = fit_ridge(X[train], Y[train], alpha)
    Ye = _numpy(Y[~train])
    sse = ((model.predict(_numpy(X[~train])) - Ye) ** 2).sum()
    sst = ((Ye - _numpy(Y[train]).mean(0)) ** 2).sum()
    return float(1 - sse / max(sst, 1e-12))


def nearest_candidate_accuracy(
    model: Ridge, X: np.ndarray, ids: np.ndarray, candidates: np.ndarray
) -> float:
    """Fraction of rows whose prediction is nearest (cosine) to its own row of ``candidates
    [c, k]``."""
    pred = model.predict(_numpy(X))
    pred /= np.linalg.norm(pred, axis=1, keepdims=True) + 1e-12
    cand = candidates / (np.linalg.norm(candidates, axis=1, keepdims=True) + 1e-12)
    return float(((pred @ cand.T).argmax(1) == ids).mean())


def _numpy(a: Any) -> np.ndarray:
    if hasattr(a, "detach"):
        a = a.detach().cpu().numpy()
    return np.asarray(a, dtype=np.float64)
