"""Attention-head scorers and head ablation for any compatible :class:`interp.Model`.

Scorers read attention patterns (``hook_pattern``, ``[batch, head, query, key]``) and
return one number per head; ablation edits replace chosen heads' outputs (``hook_z``,
``[batch, pos, head, d_head]``) by their mean over a reference set, or by zero.

- :func:`ngram_head_scores`: for query ``i``, the attention mass on keys ``j`` with
  ``x_{j-1} = x_i`` (2-gram) and also ``x_{j-2} = x_{i-1}`` (3-gram), against the mass
  uniform causal attention would put there (Akyurek et al. 2024's n-gram heads);
  :func:`model_head_scores` pools it over a model's every pattern hook and many prompts;
  :func:`best_ngram_head` and :func:`rank_ngram_heads` pick heads from the scores.
- :func:`head_means`, :func:`ablation_edits`, :func:`empty_head_edits`: mean / zero head
  ablation as edits for :func:`interp.trace`, and the edits that ablate nothing;
  :func:`random_head_sets` draws the distinct random head sets of the null and
  :func:`ablation_significance` tests the chosen heads' accuracy drop against theirs.

Prompts of different lengths are PAD-padded ``[n, T]`` with their ``lengths``; they are
run in batches of similar length (:func:`length_batches`), and ``pad_id`` marks the
positions that are not scored or averaged.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

if TYPE_CHECKING:
    from interp.tracing.hooks import EditFn
    from interp.tracing.model import Model

SCORE_KEYS = ("mass", "uniform", "ratio")


def length_batches(lengths: np.ndarray, batch_size: int) -> list[np.ndarray]:
    """Row indices grouped by similar length (less padding), shortest first."""
    order = np.argsort(lengths, kind="stable")
    return [
        order[i : i + batch_size] for i in range(0, len(order), batch_size)
    ]  # numpy index arrays


# --------------------------------------------------------------------------- n-gram heads
def ngram_head_scores(
    tokens: torch.Tensor,
    patterns: torch.Tensor,
    n: int,
    query_mask: torch.Tensor | None = None,
    pad_id: int | None = None,
) -> dict[str, np.ndarray]:
    """n-gram head scores of one layer's attention.

    Args:
        tokens: ``[batch, T]`` token ids.
        patterns: ``[batch, head, query, key]`` attention (any model's ``hook_pattern``).
        n: 2 (keys ``j`` with ``x_{j-1} = x_i``) or 3 (also ``x_{j-2} = x_{i-1}``).
        query_mask: ``[batch, T]`` queries to score (default: every token that is not
            ``pad_id``; every token if ``pad_id`` is None). Queries without any matching
            key are left out.

    Returns per head ``[head]``: ``mass`` (mean attention on matching keys), ``uniform``
    (the mean mass uniform causal attention would give), ``ratio = mass / uniform``, and the
    sums they came from (``mass_sum``, ``uniform_sum``, ``count``) for pooling batches.
    """
    from interp.data.ngram_heads import ngram_pattern

    patterns = patterns.float().cpu()
    tokens = tokens.cpu()
    B, H, T, _ = patterns.shape
    match = (ngram_pattern(tokens[:, :T], n - 1) > 0).float()  # [batch, query, key], j <= i
    if query_mask is not None:
        q = query_mask[:, :T].cpu().bool()
    elif pad_id is not None:
        q = tokens[:, :T] != pad_id
    else:
        q = torch.ones(B, T, dtype=torch.bool)
    q = q & (match.sum(-1) > 0)  # [batch, query]
    mass = (patterns * match[:, None]).sum(-1)  # [batch, head, query]
    uniform = match.sum(-1) / torch.arange(1, T + 1).float()  # [batch, query]
    qf = q.float()
    mass_sum = (mass * qf[:, None]).sum((0, 2)).numpy()
    uni_sum = float((uniform * qf).sum())
    count = float(qf.sum())
    return finish_scores(mass_sum, np.full(H, uni_sum), np.full(H, count))


def finish_scores(
    mass_sum: np.ndarray, uniform_sum: np.ndarray, count: np.ndarray
) -> dict[str, np.ndarray]:
    """Per-head ``mass``, ``uniform`` and ``ratio`` from pooled sums (see
    :func:`ngram_head_scores`)."""
    c = np.maximum(count, 1e-12)
    mass, uni = mass_sum / c, uniform_sum / c
    return {
        "mass": mass,
        "uniform": uni,
        "ratio": mass / np.maximum(uni, 1e-12),
        "mass_sum": mass_sum,
        "uniform_sum": uniform_sum,
        "count": count,
    }


def pattern_hooks(m: Model) -> list[str]:
    """Every attention-pattern hook of a model, in execution order (a transformer's
    ``m.hook("pattern", l)``, an n-gram LSTM's hard-wired ``ngram.{k}.hook_pattern``)."""
    return [h for h in m.hook_names if h.endswith("hook_pattern")]


def model_head_scores(
    m: Model,
    tokens: torch.Tensor,
    lengths: np.ndarray,
    batch_size: int,
    ns: Sequence[int] = (2, 3),
    pad_id: int | None = None,
) -> dict[int, dict[str, np.ndarray]]:
    """``{n: {"mass"|"uniform"|"ratio": [n_pattern_hooks, head]}}`` pooled over the prompts
    ``tokens [n, T]`` (PAD-padded to ``lengths``); batching does not change the result."""
    from interp.tracing.trace import trace

    names = pattern_hooks(m)
    sums: dict[int, dict[int, list[Any]]] = {}  # n -> hook -> [mass, uniform, count] sums
    for idx in length_batches(lengths, batch_size):
        T = int(lengths[idx].max())
        x = tokens[torch.as_tensor(idx), :T]
        _, acts = trace(m, x, capture=names)
        for n in ns:
            for li, name in enumerate(names):
                s = ngram_head_scores(x, acts[name], n, pad_id=pad_id)
                acc = sums.setdefault(n, {}).setdefault(li, [0.0, 0.0, 0.0])
                acc[0] = acc[0] + s["mass_sum"]
                acc[1] = acc[1] + s["uniform_sum"]
                acc[2] = acc[2] + s["count"]
    out = {}
    for n in ns:
        rows = [finish_scores(*sums[n][li]) for li in range(len(names))]
        out[n] = {k: np.stack([r[k] for r in rows]) for k in SCORE_KEYS}
    return out


def ngram_criterion(
    s: dict[str, np.ndarray], mass_at: float = 0.5, ratio_at: float = 3.0
) -> np.ndarray:
    """``min(mass / mass_at, ratio / ratio_at)`` per head: >= 1 where both "mass >= mass_at"
    and "ratio >= ratio_at" hold."""
    return np.minimum(s["mass"] / mass_at, s["ratio"] / ratio_at)


def best_ngram_head(
    scores: dict[int, dict[str, np.ndarray]],
    min_layer: int = 1,
    mass_at: float = 0.5,
    ratio_at: float = 3.0,
) -> dict[str, Any]:
    """The head in layers >= ``min_layer`` closest to (or furthest past) the criterion
    "mass >= mass_at and ratio >= ratio_at" for 2- or 3-grams: its score is
    ``min(mass / mass_at, ratio / ratio_at)`` (>= 1 means both hold)."""
    best = {"score": -np.inf}
    for n, s in scores.items():
        both = ngram_criterion(s, mass_at, ratio_at)
        for layer in range(min_layer, both.shape[0]):
            for h in range(both.shape[1]):
                if both[layer, h] > best["score"]:
                    best = {
                        "score": float(both[layer, h]),
                        "layer": layer,
                        "head": h,
                        "n": n,
                        "mass": float(s["mass"][layer, h]),
                        "ratio": float(s["ratio"][layer, h]),
                    }
    return best


def rank_ngram_heads(
    scores: dict[int, dict[str, np.ndarray]], mass_at: float = 0.5, ratio_at: float = 3.0
) -> list[tuple[int, int]]:
    """Every ``(layer, head)``, best n-gram head first: by the larger of the 2- and 3-gram
    :func:`ngram_criterion`."""
    rank = np.maximum(
        *[ngram_criterion(scores[n], mass_at, ratio_at) for n in (2, 3)]
    )  # [layer, head]
    H = rank.shape[1]
    order = np.argsort(rank, axis=None)[::-1]
    return [(int(i // H), int(i % H)) for i in order]


# --------------------------------------------------------------------------- ablation
def head_means(
    m: Model, tokens: torch.Tensor, lengths: np.ndarray, batch_size: int, pad_id: int | None = None
) -> dict[str, torch.Tensor]:
    """Mean ``hook_z`` ``[head, d_head]`` per layer (keyed by ``m.hook("z", l)``) over the
    positions of ``tokens [n, T]`` that are not ``pad_id``."""
    from interp.tracing.trace import trace

    names = [m.hook("z", layer) for layer in range(m.n_layers)]
    sums: dict[str, torch.Tensor] = {}
    count = 0
    for idx in length_batches(lengths, batch_size):
        T = int(lengths[idx].max())
        x = tokens[torch.as_tensor(idx), :T]
        keep = torch.ones(x.shape) if pad_id is None else (x != pad_id).float()
        keep = keep[..., None, None].to(m.device)  # [batch, pos, 1, 1]
        _, acts = trace(m, x, capture=names)
        for n in names:
            part = (acts[n].float() * keep).sum((0, 1))
            sums[n] = sums[n] + part if n in sums else part
        count += int(keep.sum())
    return {n: (s / count) for n, s in sums.items()}


def ablation_edits(
    m: Model, heads: Sequence[tuple[int, int]], means: dict[str, torch.Tensor], how: str = "mean"
) -> dict[str, EditFn]:
    """``hook_z`` edits replacing the given ``(layer, head)`` outputs by their mean
    (``means`` from :func:`head_means`) or by zero (``how="zero"``)."""
    from interp.tracing.trace import edit_heads

    by_layer: dict[int, list[int]] = {}
    for layer, h in heads:
        by_layer.setdefault(layer, []).append(h)
    edits = {}
    for layer, hs in by_layer.items():
        name = m.hook("z", layer)
        mu = means[name][hs]  # [k, d_head]
        fn = functools.partial(_fill, mu) if how == "mean" else torch.zeros_like
        edits[name] = edit_heads(hs, fn)
    return edits


def _fill(mu: torch.Tensor, a: torch.Tensor) -> torch.Tensor:
    """``mu`` in the dtype and shape of ``a`` (a fresh tensor, not a view)."""
    return mu.to(a.dtype).expand_as(a).clone()


def empty_head_edits(m: Model) -> dict[str, EditFn]:
    """An edit on every layer's ``hook_z`` that ablates no head (must change nothing)."""
    from interp.tracing.trace import edit_heads

    return {m.hook("z", layer): edit_heads([], torch.zeros_like) for layer in range(m.n_layers)}


def random_head_sets(
    heads: Sequence[tuple[int, int]], size: int, n: int, rng: np.random.Generator
) -> list[list[tuple[int, int]]]:
    """Up to ``n`` *distinct* sets of ``size`` heads drawn from ``heads`` (each set in drawing
    order). Distinct, so that a repeated set does not count twice as evidence; when ``heads``
    has ``n`` or fewer such sets, every one of them (the null is then exhaustive)."""
    from itertools import combinations
    from math import comb

    heads = [(int(h[0]), int(h[1])) for h in heads]
    size = min(size, len(heads))
    if comb(len(heads), size) <= n:
        return [list(c) for c in combinations(heads, size)]
    seen: set[frozenset[tuple[int, int]]] = set()
    out: list[list[tuple[int, int]]] = []
    while len(out) < n:
        pick = [heads[i] for i in rng.choice(len(heads), size=size, replace=False)]
        if frozenset(pick) not in seen:
            seen.add(frozenset(pick))
            out.append(pick)
    return out


def ablation_significance(drop_top: float, drop_random: Sequence[float]) -> dict[str, Any]:
    """Is ablating the chosen heads costlier than ablating random head sets? (Any "chosen set vs
    random sets of the same size" cost; the bigram analysis's removal test uses it too.)

    ``p``: one-sided one-sample t-test (:func:`scipy.stats.ttest_1samp`) of the random sets'
    drops against the chosen set's drop, H1: their mean is smaller. When every random drop is
    the same the test is undefined; ``p`` is then 0 if the chosen drop is larger, else 1.
    ``p_rank``: the exact permutation p-value of the chosen set among the random sets,
    ``(1 + #{random drop >= chosen drop}) / (1 + n)``; it can never be below ``1 / (1 + n)``
    (e.g. 1/9 with 8 random sets), so it is reported beside ``p``, not used as the test.
    With fewer than two random sets (a model too small to draw them) the t-test is undefined:
    ``p`` and ``t`` are NaN, so a criterion on ``p`` fails instead of passing unseen."""
    from scipy.stats import ttest_1samp

    d = np.asarray(drop_random, dtype=np.float64)
    if len(d) < 2:
        p, t = float("nan"), float("nan")
    elif np.ptp(d) == 0:
        p, t = (0.0 if drop_top > d[0] else 1.0), float("nan")
    else:
        res = ttest_1samp(d, drop_top, alternative="less")
        p, t = float(res.pvalue), float(res.statistic)
    return {
        "p": p,
        "t": t,
        "n": int(len(d)),
        "p_rank": float((1 + np.sum(d >= drop_top)) / (1 + len(d))),
        "test": (
            "one-sided one-sample t-test of the random drops against the top drop "
            "(scipy.stats.ttest_1samp)"
        ),
    }
