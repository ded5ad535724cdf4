"""The statistics of the reversal claims: accuracy over the cells trained (or not) in a
direction, and the tests of correct vs random log-probs in the untrained direction."""

from __future__ import annotations

import numpy as np
from jaxtyping import Float
from scipy import stats
from scipy.stats import wilcoxon

from interp.analyses.reversal.types import AboveRandomTest, EquivalenceTest, ReverseLogprobTest
from interp.data.reversal import DIRECTIONS, GROUPS, TRAINED, FactSet


def same_direction(acc: np.ndarray, split: int) -> np.ndarray:
    """Mean accuracy over (group, direction) cells trained in that direction; acc [..., D, G,
    S]."""
    cells = [
        (di, gi)
        for gi, g in enumerate(GROUPS)
        for di, d in enumerate(DIRECTIONS)
        if d in TRAINED[g]
    ]
    return np.mean([acc[..., di, gi, split] for di, gi in cells], axis=0)


def reverse(acc: np.ndarray, split: int) -> np.ndarray:
    """Mean accuracy over the one-direction groups asked in their untrained direction."""
    cells = [
        (di, gi)
        for gi, g in enumerate(GROUPS)
        for di, d in enumerate(DIRECTIONS)
        if d not in TRAINED[g]
    ]
    return np.mean([acc[..., di, gi, split] for di, gi in cells], axis=0)


def reverse_logprob_test(
    lp_correct: Float[np.ndarray, "seeds D S pairs"],
    lp_random: Float[np.ndarray, "seeds D S pairs"],
    facts: FactSet,
    margin: float,
) -> ReverseLogprobTest:
    """Correct vs random log-probs in the untrained direction (training templates), one paired
    difference per one-direction pair, averaged over seeds: :func:`equivalence_test` within
    ``+-margin``, a Wilcoxon p and :func:`above_random_test`."""
    diffs = []
    for di, d in enumerate(DIRECTIONS):
        for p in facts.pairs:
            if d not in TRAINED[p.group]:
                diffs.append(np.mean(lp_correct[:, di, 0, p.index] - lp_random[:, di, 0, p.index]))
    diffs = np.asarray(diffs)
    return ReverseLogprobTest(
        equivalence=equivalence_test(diffs, margin),
        p=1.0 if np.allclose(diffs, 0) else float(wilcoxon(diffs).pvalue),
        above=above_random_test(diffs),
    )


def above_random_test(
    diffs: np.ndarray, alpha: float = 0.05, power: float = 0.8
) -> AboveRandomTest:
    """Berglund et al.'s test: is the log-prob of the correct target higher than that of random
    ones? A one-sided paired t-test of the per-pair differences (H0: mean <= 0); the reversal
    curse holds when it is not significant. Returns ``p_above`` (the one-sided p), ``ci95`` (the
    two-sided 95% t interval of the mean difference) and ``detectable_nats``: the smallest true
    mean difference the test would find with probability ``power`` at ``alpha``, given n and the
    observed spread, so that "not significant" comes with a stated power."""
    diffs = np.asarray(diffs, dtype=np.float64)
    n, mean = len(diffs), float(diffs.mean())
    if n < 2 or np.ptp(diffs) == 0:
        return AboveRandomTest(
            p_above=0.0 if mean > 0 else 1.0, ci95=[mean, mean], detectable_nats=0.0
        )
    se = float(stats.sem(diffs))
    p = float(stats.ttest_1samp(diffs, 0.0, alternative="greater").pvalue)
    lo, hi = stats.t.interval(0.95, n - 1, loc=mean, scale=se)
    detectable = (stats.t.ppf(1 - alpha, n - 1) + stats.t.ppf(power, n - 1)) * se
    return AboveRandomTest(
        p_above=p, ci95=[float(lo), float(hi)], detectable_nats=float(detectable)
    )


def equivalence_test(diffs: np.ndarray, margin: float, alpha: float = 0.05) -> EquivalenceTest:
    """TOST: two one-sided one-sample t-tests (:func:`scipy.stats.ttest_1samp`) of H0 "mean
    <= -margin" and H0 "mean >= +margin"; ``p_equivalence`` is the larger p, so p < alpha
    means the mean lies within the margin. ``ci_low, ci_high``: the matching (1 - 2 alpha)
    t confidence interval (inside the margin exactly when p < alpha). Identical differences
    (no spread) are equivalent iff they lie strictly inside the margin."""
    diffs = np.asarray(diffs, dtype=np.float64)
    mean, n = float(diffs.mean()), len(diffs)
    if np.ptp(diffs) == 0:
        p, low, high = (0.0 if abs(mean) < margin else 1.0), mean, mean
    else:
        p = max(
            float(stats.ttest_1samp(diffs, -margin, alternative="greater").pvalue),
            float(stats.ttest_1samp(diffs, margin, alternative="less").pvalue),
        )
        low, high = stats.t.interval(1 - 2 * alpha, n - 1, loc=mean, scale=stats.sem(diffs))
    return EquivalenceTest(
        p_equivalence=p,
        ci_low=float(low),
        ci_high=float(high),
        ci_level=1 - 2 * alpha,
        margin=float(margin),
        mean_diff=mean,
        n=n,
    )
