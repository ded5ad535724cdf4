"""From per-question scores to the claims' numbers: mean curves, peak and onset layers, the
patch sets' excess drops over their size-matched controls, and bootstrap intervals of each."""

from __future__ import annotations

import warnings

import numpy as np
from jaxtyping import Float
from scipy.stats import bootstrap

from interp.analyses.crossmodal.config import EDGE_NAMES, PATCH_SETS, Config
from interp.analyses.crossmodal.types import (
    CleanAnswers,
    Interval,
    Intervals,
    Summary,
    Sweeps,
)
from interp.data.crossmodal import QUESTION_TYPES, Sample


def peaks_and_onsets(
    curves: Float[np.ndarray, "edges layers"],
) -> tuple[Float[np.ndarray, " edges"], Float[np.ndarray, " edges"]]:
    """Per edge of mean score curves ``[E, L]``: the peak (window centre of the largest drop) and
    the onset (the first window centre whose drop reaches half of that largest drop; NaN where
    nothing drops), as floats ``[E]`` each."""
    drop = -curves
    top = drop.max(1)
    peak = drop.argmax(1).astype(float)
    onset = np.array(
        [
            np.flatnonzero(d >= t / 2)[0] if t > 0 else np.nan
            for d, t in zip(drop, top, strict=True)
        ],
        float,
    )
    return peak, onset


def excess_drops(patch_curves: Float[np.ndarray, "4 layers"]) -> Float[np.ndarray, 2]:
    """Largest drop of object->question minus that of its size-matched random set, and the same
    for non-object->question against the rest of the image (rows ordered as
    :data:`PATCH_SETS`)."""
    top = (-patch_curves).max(1)
    return np.array([top[0] - top[1], top[2] - top[3]])


def _bootstrap_ci(stat, n: int, n_resamples: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """95% percentile-bootstrap interval of ``stat(indices)`` over ``n`` questions."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # degenerate (constant) resampled statistics are expected
        ci = bootstrap(
            (np.arange(n),),
            stat,
            vectorized=False,
            n_resamples=n_resamples,
            method="percentile",
            random_state=seed,
        ).confidence_interval
    return np.asarray(ci.low), np.asarray(ci.high)


def layer_intervals(
    scores: Float[np.ndarray, "n edges layers"],
    patch: Float[np.ndarray, "n 4 layers"],
    n_resamples: int,
    seed: int,
) -> Intervals:
    """Peaks, onsets (:func:`peaks_and_onsets`) and excess drops (:func:`excess_drops`) with 95%
    percentile-bootstrap intervals over the analysed questions (``patch``: NaN rows where a
    question mentions no object); questions are resampled whole, so each resample keeps every
    edge of a question together."""

    def stat(idx: np.ndarray) -> np.ndarray:
        i = idx.astype(int)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # an all-NaN column in a resample
            peak, onset = peaks_and_onsets(np.nanmean(scores[i], 0))
            return np.concatenate([peak, onset, excess_drops(np.nanmean(patch[i], 0))])

    E = scores.shape[1]
    point = stat(np.arange(len(scores)))
    lo, hi = _bootstrap_ci(stat, len(scores), n_resamples, seed)

    def pack(sl: slice) -> dict[str, Interval]:
        return {
            n: Interval(float(p), [round(float(a), 2), round(float(b), 2)])
            for n, p, a, b in zip(EDGE_NAMES, point[sl], lo[sl], hi[sl], strict=True)
        }

    ex = {
        n: Interval(
            round(float(point[2 * E + j]), 3),
            [round(float(lo[2 * E + j]), 3), round(float(hi[2 * E + j]), 3)],
        )
        for j, n in enumerate(("object_vs_random", "nonobject_vs_rest"))
    }
    return Intervals(peak=pack(slice(0, E)), onset=pack(slice(E, 2 * E)), excess=ex)


def summarise(test: list[Sample], clean: CleanAnswers, sw: Sweeps, config: Config) -> Summary:
    """Means over the analysed samples: per edge ``[E, L]``, per type ``[type, E, L]``, the patch
    sets and their controls ``[4, L]`` (questions that mention an object), the lens ``[L+1]``, and
    the bootstrap intervals of :func:`layer_intervals`."""
    kept = clean.kept
    ok = np.array(kept, dtype=int)
    scores = sw.scores
    types = [t for t in QUESTION_TYPES if any(test[i].qtype == t for i in kept)]
    patch = scores[ok][:, [EDGE_NAMES.index(n) for n in PATCH_SETS]]  # [n, 4, L]
    patch[sw.n_object[ok] == 0] = np.nan  # no object mentioned: nothing (no random set) to cut
    return Summary(
        ok=ok,
        types=types,
        mean=np.nanmean(scores[ok], axis=0),
        by_type=np.stack(
            [np.nanmean(scores[[i for i in kept if test[i].qtype == t]], axis=0) for t in types]
        ),
        patch_sets=np.nanmean(patch, axis=0),
        lens_with_norm=np.nanmean(sw.lens_norm[ok], 0),
        lens_without_norm=np.nanmean(sw.lens_raw[ok], 0),
        intervals=layer_intervals(scores[ok], patch, config.n_bootstrap, config.seed),
    )


def type_means(
    test: list[Sample], kept: list[int], types: list[str], values: Float[np.ndarray, " n_test"]
) -> dict[str, float]:
    """Mean of per-sample ``values`` over the analysed samples of each question type (2
    decimals)."""
    return {
        t: round(float(np.nanmean(values[[i for i in kept if test[i].qtype == t]])), 2)
        for t in types
    }
