"""Noise-driven dynamics of a recurrent map with a readout (not an analysis of its own).

Two measurements from Torre et al. (2025), usable on any noise-driven RNN ``h -> F(h, x)``
with logits ``readout(h)``:

* :func:`residency_times`: per state, the number of steps until the argmax output changes,
  averaged over fresh-noise continuations started from that state and capped at
  ``max_steps`` (a continuation that never switches counts ``max_steps``). It is a property
  of the state, not of the one trajectory that visited it::

      rt, p_max = residency_times(model.cell, model.readout, H, d_input=10)  # H: [n, d]

* :func:`kick_neurons`: candidates from connectivity alone. The cluster population of an
  output is the set of units most active in that output's cluster states; the kick neurons
  of the switch ``a -> b`` are the units with the largest presynaptic weights onto the rows
  of ``b``'s population (``mean_i W_hh[i, j]`` over ``i`` in the population, ``j`` outside
  it): the units that drive the state into ``b``.

Also :func:`continuation_spread` (how far fresh noise moves a state in a few steps), the
orbit geometry of noisy runs (:func:`pca`, :func:`orbit_geometry`: one cluster per frequent
output, and whether the two switch directions take different paths) and
:func:`trajectory_growth`, which tells a bounded orbit from one that grows without bound (an
expanding mode too slow to show within the training length, but fatal to a long run).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import torch

CellFn = Callable[[torch.Tensor, torch.Tensor | None], torch.Tensor]

RT_SAMPLES, RT_MAX_STEPS = 20, 50  # the paper's continuations per state and cap


def residency_times(
    cell: CellFn,
    readout: Callable[[torch.Tensor], torch.Tensor],
    H: torch.Tensor,
    d_input: int,
    *,
    n_samples: int = RT_SAMPLES,
    max_steps: int = RT_MAX_STEPS,
    sigma: float = 1.0,
    generator: torch.Generator | None = None,
    chunk: int = 2048,
) -> tuple[np.ndarray, np.ndarray]:
    """Mean steps until the argmax output changes, from each state of ``H`` [n, d].

    From every state, ``n_samples`` continuations are run with fresh input noise
    ``N(0, sigma^2 I_{d_input})``; a continuation's time is the first step (1-based) whose
    argmax output differs from the state's own, or ``max_steps`` if none does. Returns the
    mean over continuations [n] and the state's top softmax probability [n] (the paper's
    cluster rule also asks for a confident output)."""
    if H.ndim != 2:
        raise ValueError(f"H must be [n, d], got shape {tuple(H.shape)}")
    if n_samples < 1 or max_steps < 1:
        raise ValueError(f"need n_samples >= 1 and max_steps >= 1, got {n_samples}, {max_steps}")
    rts, probs = [], []
    with torch.no_grad():
        for start in range(0, len(H), chunk):
            h0 = H[start : start + chunk]
            logits0 = readout(h0)
            probs.append(torch.softmax(logits0.double(), -1).max(-1).values.cpu().numpy())
            out0 = logits0.argmax(-1).repeat_interleave(n_samples)  # [m * n_samples]
            h = h0.repeat_interleave(
                n_samples, dim=0
            )  # [m * n_samples, d]: continuations of state i together
            steps = torch.full((len(h),), max_steps, dtype=torch.long, device=h.device)
            alive = torch.ones(len(h), dtype=torch.bool, device=h.device)
            for t in range(1, max_steps + 1):
                x = sigma * torch.randn(len(h), d_input, generator=generator).to(h.device, h.dtype)
                h = cell(h, x)
                switched = alive & (readout(h).argmax(-1) != out0)
                steps[switched] = t
                alive &= ~switched
                if (
                    not alive.any()
                ):  # one host sync per step, to stop once every continuation switched
                    break
            rts.append(steps.view(-1, n_samples).double().mean(1).cpu().numpy())
    if not rts:
        return np.zeros(0), np.zeros(0)
    return np.concatenate(rts), np.concatenate(probs)


def cluster_populations(
    H: np.ndarray, y: np.ndarray, in_cluster: np.ndarray, a: int, b: int, size: int | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Units most active in ``a``'s cluster states relative to ``b``'s, and the reverse.

    ``H`` [..., d] states, ``y`` [...] their argmax outputs, ``in_cluster`` [...] a mask of
    cluster states. ``size`` units each (default a quarter of the units), ranked by the
    difference of mean activity between the two clusters."""
    Hf, yf, cf = H.reshape(-1, H.shape[-1]), y.reshape(-1), in_cluster.reshape(-1)
    d = Hf.shape[1]
    size = max(1, d // 4) if size is None else int(size)

    def mean(mask: np.ndarray) -> np.ndarray:
        return Hf[mask].mean(0) if mask.any() else np.zeros(d)

    diff = mean(cf & (yf == a)) - mean(cf & (yf == b))
    return np.argsort(-diff, kind="stable")[:size], np.argsort(diff, kind="stable")[:size]


def kick_neurons(W_hh: np.ndarray, pop_dst: np.ndarray, k: int) -> tuple[list[int], np.ndarray]:
    """The ``k`` units with the largest mean presynaptic weight onto the rows of ``pop_dst``.

    ``W_hh[i, j]`` is the weight from unit ``j`` to unit ``i``. Score of unit ``j``:
    ``mean_{i in pop_dst} W_hh[i, j]``; the population's own units are left out (their
    recurrent self-excitation holds a cluster, it does not start a switch into it). Returns the
    units and the scores [d] (NaN for the excluded units)."""
    W = np.asarray(W_hh, dtype=float)
    pop = np.asarray(pop_dst, dtype=int)
    score = W[pop].mean(0) if len(pop) else np.zeros(W.shape[1])
    score = score.astype(float)
    score[pop] = np.nan
    order = np.argsort(np.where(np.isnan(score), np.inf, -score), kind="stable")
    order = order[~np.isnan(score[order])]
    return order[:k].tolist(), score


def pre_switch_activity(
    H: np.ndarray,
    y: np.ndarray,
    a: int,
    b: int,
    base_a: np.ndarray,
    base_b: np.ndarray,
    window: int = 3,
) -> tuple[np.ndarray, int]:
    """Mean activity [d] in the ``window`` steps before each switch between outputs ``a`` and
    ``b`` minus the mean of the cluster it leaves (``base_a`` or ``base_b``), and the number of
    switches. ``H`` [n, T, d], ``y`` [n, T]. The ad-hoc activity ranking the paper's
    connectivity rule is compared with."""
    total = np.zeros(H.shape[-1])
    count = 0
    for i, t in zip(*np.where(y[:, 1:] != y[:, :-1]), strict=True):
        t = t + 1  # first step with the new output
        if t >= window and y[i, t - 1] in (a, b) and y[i, t] in (a, b):
            total += H[i, t - window : t].mean(0) - (base_a if y[i, t - 1] == a else base_b)
            count += 1
    return total / max(count, 1), count


def continuation_spread(
    cell: CellFn,
    H0: torch.Tensor,
    d_input: int,
    n_trials: int,
    steps: int = 5,
    generator: torch.Generator | None = None,
) -> float:
    """Mean distance to their centroid of ``n_trials`` fresh-noise continuations of ``steps``
    steps, averaged over the start states ``H0`` [n, d] (NaN if there are none): how much
    noise moves the state from there."""
    if len(H0) == 0:
        return float("nan")
    out = []
    with torch.no_grad():
        for h0 in H0:
            h = h0.expand(n_trials, -1).clone()
            for _ in range(steps):
                h = cell(
                    h, torch.randn(n_trials, d_input, generator=generator).to(h.device, h.dtype)
                )
            out.append(float((h - h.mean(0)).norm(dim=-1).mean()))
    return float(np.mean(out))


# ------------------------------------------------------------------- orbit geometry
GROWTH_LIMIT = 1.005  # per-step growth of the mean state norm above which an orbit diverges
NORM_LIMIT = 1e12  # a state norm above this (or a non-finite one) diverged, whatever the rate


def trajectory_growth(
    H: np.ndarray | torch.Tensor,
    window: float = 0.2,
    growth_limit: float = GROWTH_LIMIT,
    norm_limit: float = NORM_LIMIT,
) -> dict[str, Any]:
    """Whether noisy runs ``H`` [n, T, d] stay bounded: ``growth_per_step`` is the geometric
    per-step change of the mean state norm between the first and the last ``window`` of the
    steps (about 1 on a stationary orbit, > 1 when an expanding mode dominates), ``max_norm``
    the largest state norm (inf when any entry is not finite), ``diverged`` whether either
    passes its limit. A ReLU RNN without biases whose active-set Jacobian expands by a few
    percent a step looks fine over a 50-step training sequence (x2-3) and overflows float32
    within a few thousand steps; its PCA, residency and cluster measures would describe the
    blow-up, not an orbit."""
    X = torch.as_tensor(H).double()
    if X.ndim != 3 or X.shape[1] < 2:
        raise ValueError(f"H must be [n, T >= 2, d], got shape {tuple(X.shape)}")
    finite = bool(torch.isfinite(X).all())
    norms = X.norm(dim=-1) if finite else torch.zeros(X.shape[:2], dtype=torch.double)  # [n, T]
    max_norm = float(norms.max()) if finite else float("inf")
    w = max(1, int(round(window * X.shape[1])))
    first, last = norms[:, :w].mean(), norms[:, -w:].mean()
    span = X.shape[1] - w  # steps between the two windows' centres
    if not finite:
        growth = float("inf")
    elif float(first) <= 0.0:  # a run that starts dead: bounded unless it wakes up
        growth = 1.0 if float(last) <= 0.0 else float("inf")
    else:
        growth = float((last / first) ** (1.0 / max(span, 1)))
    diverged = (not finite) or max_norm > norm_limit or growth > growth_limit
    return {
        "diverged": bool(diverged),
        "growth_per_step": growth,
        "max_norm": max_norm,
        "finite": finite,
    }


def pca(X: np.ndarray, k: int = 3) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(mean, components [k, d], explained variance ratio [k]) of rows of X.

    numpy's SVD rather than ``sklearn.decomposition.PCA``: sklearn flips component signs
    (``svd_flip``), which would mirror the stored orbit PCs and the figures, and its float32
    explained-variance ratio differs by ~1e-7 from this one (the PC1 criterion's value).
    Non-finite rows are refused with a clear error (LAPACK would fail with "SVD did not
    converge"): check runs with :func:`trajectory_growth` first."""
    X = np.asarray(X)
    if not np.isfinite(X).all():
        raise ValueError(
            f"pca: {int((~np.isfinite(X)).any(-1).sum())} of {len(X)} rows are not finite "
            "(a diverged run? see trajectory_growth)"
        )
    mu = X.mean(0)
    U, S, Vt = np.linalg.svd(X - mu, full_matrices=False)
    var = S**2 / max(1, len(X) - 1)
    return mu, Vt[:k], var[:k] / var.sum()


def orbit_geometry(
    H: np.ndarray, y: np.ndarray, reg: np.ndarray, frequent: list[int]
) -> dict[str, Any]:
    """PCA of orbit states, one cluster per frequent output (nearest-centroid purity of the
    cluster-region states in the top-2 PC plane) and the loop test: separation of 0->2 and
    2->0 switch states perpendicular to the axis joining the two cluster centroids."""
    flatH, flaty, flatr = H.reshape(-1, H.shape[-1]), y.reshape(-1), reg.reshape(-1)
    mu, comps, evr = pca(flatH, 3)
    Z = (flatH - mu) @ comps.T
    out = {"mu": mu, "components": comps, "evr": evr, "Z": Z, "pc1": float(evr[0])}
    cl = flatr == 2
    cents = {k: Z[cl & (flaty == k), :2].mean(0) for k in frequent if (cl & (flaty == k)).sum() > 5}
    if len(cents) == len(frequent) and len(frequent) > 1:
        keys = list(cents)
        C = np.stack([cents[k] for k in keys])
        sel = cl & np.isin(flaty, keys)
        d = ((Z[sel, None, :2] - C[None]) ** 2).sum(-1)
        pred = np.asarray(keys)[d.argmin(1)]
        out["cluster_purity"] = float((pred == flaty[sel]).mean())
        spread = np.mean([Z[cl & (flaty == k), :2].std(0).mean() for k in keys])
        out["cluster_separation"] = float(np.linalg.norm(C[0] - C[-1]) / max(spread, 1e-12))
    else:
        out["cluster_purity"], out["cluster_separation"] = float("nan"), float("nan")
    # switch states (first step with the new output), per direction, between the extreme outputs
    a, b = (frequent[0], frequent[-1]) if len(frequent) > 1 else (0, 0)
    prev = np.concatenate([np.full((y.shape[0], 1), -1), y[:, :-1]], 1).reshape(-1)
    s_ab = (prev == a) & (flaty == b)
    s_ba = (prev == b) & (flaty == a)
    out["n_switch_ab"], out["n_switch_ba"] = int(s_ab.sum()), int(s_ba.sum())
    if a in cents and b in cents and s_ab.sum() > 3 and s_ba.sum() > 3:
        axis = cents[b] - cents[a]
        perp = np.array([-axis[1], axis[0]]) / max(np.linalg.norm(axis), 1e-12)
        pa, pb = Z[s_ab, :2] @ perp, Z[s_ba, :2] @ perp
        pooled = np.sqrt(0.5 * (pa.var() + pb.var()))
        out["loop_separation"] = float(abs(pa.mean() - pb.mean()) / max(pooled, 1e-12))
        out["switch_paths"] = (Z[s_ab, :2].mean(0), Z[s_ba, :2].mean(0))
    else:
        out["loop_separation"] = float("nan")
    return out
