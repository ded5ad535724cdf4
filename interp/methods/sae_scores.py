"""Circuit discovery with discrete SAE codes (O'Neill & Bui 2024), our scorer, and metrics.

Pipeline on any TransformerLens model and paired prompts (:mod:`interp.data.sae_circuits`):

1. per (prompt, head): what the head writes to the residual stream, averaged over positions
   (:func:`interp.methods.patching.head_results`), ``[2N, heads, d_model]``;
2. one SAE shared by all heads trained on those ``2N * heads`` vectors;
3. a (prompt, head) *code* is its most active latent (``[2N, heads]`` ints);
4. scores per head:

   - :func:`paper_node_scores`: number of codes seen in positives and never in negatives,
     softmaxed across heads (the paper's node score);
   - :func:`paper_edge_scores`: per head pair (earlier layer -> later layer), the number of
     code pairs that co-occur in positives and never in negatives; edges ranked, and a head
     scored by how many top-ranked edges it touches (the paper's edge-based head score);
   - :func:`code_shift_scores` (ours): does the head's code distribution differ between
     positives and negatives? A chi-squared (or mutual-information) statistic against a
     paired permutation null (labels flipped within pairs), reported as a z-score.

Metrics, thin wrappers over scikit-learn and scipy: :func:`roc_auc` (ties get half credit),
:func:`roc_curve`, :func:`spearman`, :func:`best_f1`. The permutation null of
:func:`code_shift_scores` is ours: it scores every permutation and head in one array
operation (its chi-squared and mutual information equal ``scipy.stats.chi2_contingency``
without continuity correction and ``sklearn.metrics.mutual_info_score``; the tests check).
"""

from __future__ import annotations

import time
from typing import Literal, Optional

import numpy as np
import torch
from jaxtyping import Bool, Float, Int, Real

from interp.sae.model import SAEConfig
from interp.sae.train import SAETrainConfig, train_sae


# ------------------------------------------------------------------ codes
def sae_codes(features: Float[torch.Tensor, "n heads d"], sae_cfg: SAEConfig | dict | None = None,
              train_cfg: SAETrainConfig | dict | None = None, train_rows: Optional[Int[np.ndarray, " rows"]] = None
              ) -> tuple[Int[np.ndarray, "n heads"], dict]:
    """Train one SAE (shared by all heads) on ``features[train_rows]`` (``[n, heads, d]``; all
    prompts when None) and return the argmax codes of *all* prompts ``[n, heads]`` and the
    SAE's training report (FVU etc. on its training vectors)."""
    n, H, d = features.shape
    cfg = SAEConfig.model_validate({"d_in": d, **(dict(sae_cfg) if isinstance(sae_cfg, dict) else
                                                  (sae_cfg.model_dump() if sae_cfg is not None else {}))})
    train_x = features if train_rows is None else features[torch.as_tensor(train_rows, dtype=torch.long)]
    sae, report = train_sae(train_x.reshape(-1, d), cfg, train_cfg)
    with torch.no_grad():
        f = sae.encode(features.reshape(n * H, d).to(sae.W_dec.dtype))  # [n*H, d_sae]
    codes = f.argmax(-1).view(n, H).cpu().numpy()
    # An input with no active latent gets its own code (-1), not latent 0.
    codes[(f.max(-1).values <= 0).view(n, H).cpu().numpy()] = -1
    report["sae"] = sae
    return codes, report


# ------------------------------------------------------------------ paper scores
def paper_node_scores(codes: Int[np.ndarray, "n heads"], labels: Bool[np.ndarray, " n"]) -> Float[np.ndarray, " heads"]:
    """``[heads]``: softmax across heads of |codes in positives, never in negatives|."""
    labels = np.asarray(labels, dtype=bool)
    counts = np.array([len(set(codes[labels, h]) - set(codes[~labels, h])) for h in range(codes.shape[1])], float)
    e = np.exp(counts - counts.max())
    return e / e.sum()


def paper_edge_scores(codes: Int[np.ndarray, "n heads"], labels: Bool[np.ndarray, " n"], top_k: Optional[int] = None
                      ) -> tuple[Float[np.ndarray, " heads"], Float[np.ndarray, "heads heads"]]:
    """Edge-based head scores: ``(head_scores [heads], edge_counts [heads, heads])``.

    ``edge_counts[i, j]`` (i != j) counts the code pairs ``(c_i, c_j)`` seen together on a
    positive prompt and never on a negative one. Head pairs are ranked by that count (ties
    by index); walking down the ranking, each pair contributes its two heads to a list, and
    the first ``top_k`` entries of the list (default: ``heads``; the paper uses
    ``heads_per_layer**2 // 2``) each add one vote to
    their head. Votes are softmaxed across heads, as in the paper."""
    labels = np.asarray(labels, dtype=bool)
    H = codes.shape[1]
    E = np.zeros((H, H))
    for i in range(H):
        for j in range(H):
            if i != j:
                pos = set(zip(codes[labels, i].tolist(), codes[labels, j].tolist()))
                neg = set(zip(codes[~labels, i].tolist(), codes[~labels, j].tolist()))
                E[i, j] = len(pos - neg)
    k = top_k or H
    order = np.lexsort((np.arange(H * H), -E.flatten()))  # by count, descending; ties by index
    ends = np.stack(np.unravel_index(order, E.shape), 1).flatten()[:k]  # h1, h2, h1, h2, ...
    votes = np.bincount(ends, minlength=H).astype(float)
    e = np.exp(votes - votes.max())
    return e / e.sum(), E


# ------------------------------------------------------------------ our scorer
def _stat(pos: np.ndarray, tot: np.ndarray, n_pos: int, n: int, kind: str) -> np.ndarray:
    """Statistic per (permutation, head) from positive counts ``pos [..., heads, codes]`` and
    totals ``tot [heads, codes]``."""
    neg = tot - pos
    if kind == "chi2":
        with np.errstate(divide="ignore", invalid="ignore"):
            e_pos, e_neg = tot * n_pos / n, tot * (n - n_pos) / n
            t = np.where(tot > 0, (pos - e_pos) ** 2 / np.where(e_pos > 0, e_pos, 1)
                         + (neg - e_neg) ** 2 / np.where(e_neg > 0, e_neg, 1), 0.0)
        return t.sum(-1)
    # mutual information (nats) between code and label
    with np.errstate(divide="ignore", invalid="ignore"):
        pc = tot / n
        terms = []
        for cnt, nl in ((pos, n_pos), (neg, n - n_pos)):
            p = cnt / n
            terms.append(np.where(p > 0, p * np.log(p / (pc * nl / n)), 0.0))
    return (terms[0] + terms[1]).sum(-1)


def code_shift_scores(codes: Int[np.ndarray, "n heads"], labels: Bool[np.ndarray, " n"],
                      pairs: Optional[Int[np.ndarray, " n"]] = None,
                      n_perm: int = 200, statistic: Literal["chi2", "mi"] = "chi2",
                      seed: int = 0) -> dict[str, np.ndarray]:
    """Per head: does its code distribution differ between positives and negatives?

    ``pairs[i]`` is the pair id of prompt ``i`` (positives and their counterfactuals share
    one); the null flips labels within pairs (or permutes them when ``pairs`` is None).
    Returns ``{"z": [heads], "stat": [heads], "p": [heads]}``; ``z`` is the score."""
    rng = np.random.default_rng(seed)
    labels = np.asarray(labels, dtype=bool)
    n, H = codes.shape
    uniq, inv = np.unique(codes, return_inverse=True)
    onehot = np.zeros((n, H, len(uniq)))
    onehot[np.arange(n)[:, None], np.arange(H)[None, :], inv.reshape(n, H)] = 1
    tot = onehot.sum(0)  # [heads, codes]
    n_pos = int(labels.sum())
    stat = _stat(np.einsum("n,nhk->hk", labels.astype(float), onehot), tot, n_pos, n, statistic)
    perm = np.empty((n_perm, n), dtype=bool)
    for b in range(n_perm):
        if pairs is None:
            perm[b] = rng.permutation(labels)
        else:
            flip = rng.random(int(pairs.max()) + 1) < 0.5
            perm[b] = labels ^ flip[pairs]
    null = _stat(np.einsum("bn,nhk->bhk", perm.astype(float), onehot), tot, n_pos, n, statistic)  # [B, heads]
    sd = null.std(0)
    z = np.where(sd > 1e-12, (stat - null.mean(0)) / np.where(sd > 1e-12, sd, 1), 0.0)
    p = (1 + (null >= stat[None] - 1e-12).sum(0)) / (n_perm + 1)
    return {"z": z, "stat": stat, "p": p}


def shuffled_labels(labels: Bool[np.ndarray, " n"], pairs: Optional[Int[np.ndarray, " n"]],
                    seed: int) -> Bool[np.ndarray, " n"]:
    """Null-control labels: flipped within each pair at random (or permuted)."""
    rng = np.random.default_rng(seed)
    labels = np.asarray(labels, dtype=bool)
    if pairs is None:
        return rng.permutation(labels)
    return labels ^ (rng.random(int(pairs.max()) + 1) < 0.5)[pairs]


# ------------------------------------------------------------------ metrics
# Thin wrappers over scikit-learn / scipy that keep this module's conventions: ``(scores,
# truth)`` argument order, NaN (not an exception or a warning) when a metric is undefined.
def roc_auc(scores: Real[np.ndarray, " heads"], truth: Bool[np.ndarray, " heads"]) -> float:
    """Area under the ROC curve; tied scores count half (Mann-Whitney with midranks, which is
    what ``sklearn.metrics.roc_auc_score`` computes). NaN when one class is empty."""
    from sklearn.metrics import roc_auc_score

    truth = np.asarray(truth, dtype=bool)
    if truth.all() or not truth.any():
        return float("nan")
    return float(roc_auc_score(truth, np.asarray(scores, float)))


def roc_curve(scores: Real[np.ndarray, " heads"], truth: Bool[np.ndarray, " heads"]
              ) -> tuple[Float[np.ndarray, " points"], Float[np.ndarray, " points"]]:
    """``(fpr, tpr)`` from (0, 0) over every distinct threshold, tied scores taken together."""
    from sklearn.metrics import roc_curve as _roc_curve

    fpr, tpr, _ = _roc_curve(np.asarray(truth, dtype=bool), np.asarray(scores, float), drop_intermediate=False)
    return fpr, tpr


def spearman(a: Real[np.ndarray, " n"], b: Real[np.ndarray, " n"]) -> float:
    """Spearman rank correlation (``scipy.stats.spearmanr``); NaN if either is constant."""
    from scipy.stats import spearmanr

    a, b = np.asarray(a, float), np.asarray(b, float)
    if np.ptp(a) == 0 or np.ptp(b) == 0:  # scipy also gives NaN, with a warning
        return float("nan")
    return float(spearmanr(a, b).statistic)


def best_f1(scores: Real[np.ndarray, " heads"], truth: Bool[np.ndarray, " heads"]) -> dict[str, float]:
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
        best = {"f1": float(f1[k]), "precision": float(prec[k]), "recall": float(rec[k]), "threshold": float(thr[k])}
    return best


def top_fraction(effects: Float[np.ndarray, " heads"], frac: float) -> Bool[np.ndarray, " heads"]:
    """Ground-truth circuit: the ``ceil(frac * heads)`` heads with the largest ``effects``."""
    k = max(1, int(np.ceil(frac * len(effects))))
    truth = np.zeros(len(effects), dtype=bool)
    truth[np.argsort(-np.asarray(effects), kind="stable")[:k]] = True
    return truth


class Timer:
    """``with Timer() as t: ...; t.seconds``."""

    def __enter__(self):
        self.t0 = time.perf_counter()
        return self

    def __exit__(self, *exc):
        self.seconds = time.perf_counter() - self.t0
