"""Head scorers on SAE codes and head outputs: the paper's node and edge scores, our
code-shift and paired scorers with their permutation nulls, latent attribution, the null-control
labels and the planted positive control (see the package docstring)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Literal

import numpy as np
import torch
from jaxtyping import Bool, Float, Int

from interp.methods.sae_scores.metrics import top_fraction

if TYPE_CHECKING:
    from interp.sae.model import SAE
    from interp.tracing.gradients import Metric
    from interp.tracing.model import Model


def paper_node_scores(
    codes: Int[np.ndarray, "n heads"], labels: Bool[np.ndarray, " n"]
) -> Float[np.ndarray, " heads"]:
    """``[heads]``: softmax across heads of |codes in positives, never in negatives|."""
    labels = np.asarray(labels, dtype=bool)
    counts = np.array(
        [len(set(codes[labels, h]) - set(codes[~labels, h])) for h in range(codes.shape[1])], float
    )
    e = np.exp(counts - counts.max())
    scores: np.ndarray = e / e.sum()
    return scores


def paper_edge_scores(
    codes: Int[np.ndarray, "n heads"], labels: Bool[np.ndarray, " n"], top_k: int | None = None
) -> tuple[Float[np.ndarray, " heads"], Float[np.ndarray, "heads heads"]]:
    """Edge-based head scores: ``(head_scores [heads], edge_counts [heads, heads])``.

    ``edge_counts[i, j]`` (i != j, both orders, as the paper) counts the code pairs
    ``(c_i, c_j)`` seen together on a positive prompt and never on a negative one. Head pairs
    are ranked by that count; walking down the ranking, each pair contributes its two heads to
    a list, and the first ``top_k`` entries of the list each add one vote to their head. The
    default ``top_k`` is the paper's (``src/main.py``): ``heads**2 // 2`` with ``heads`` every
    head of the model, not the heads of one layer. Votes are softmaxed across heads, as in
    the paper.

    Ties are neutral: the paper's code sorts with ``np.argsort(...)[::-1]``, so among pairs
    of equal count the later heads win, and with few distinct counts that decides the score.
    Here the pairs tied at the cut share its remaining entries equally (each endpoint gets
    ``remaining / (2 * tied pairs)`` votes): the expected votes under a random order of the
    tied pairs, which favours no head by its index. A head paired with itself is no edge and
    is not ranked (the paper's list holds those zero-count pairs too; they are reached only
    through ties)."""
    labels = np.asarray(labels, dtype=bool)
    H = codes.shape[1]
    E = np.zeros((H, H))
    c = np.asarray(codes, np.int64) - int(
        codes.min()
    )  # >= 0, so (c_i, c_j) -> c_i * span + c_j is one-to-one
    span = int(c.max()) + 1
    for i in range(H):
        for j in range(H):
            if i != j:
                key = c[:, i] * span + c[:, j]  # [n] one int per code pair
                E[i, j] = len(np.setdiff1d(key[labels], key[~labels]))
    k = H * H // 2 if top_k is None else int(top_k)
    ii, jj = np.nonzero(~np.eye(H, dtype=bool))  # every ordered pair of distinct heads
    counts = E[ii, jj]
    votes = np.zeros(H)
    left = float(k)
    for value in np.unique(counts)[::-1]:  # tie groups, largest count first
        if left <= 0:
            break
        grp = counts == value
        share = min(
            1.0, left / (2 * grp.sum())
        )  # each endpoint's vote: 1 if the group fits, else its share
        np.add.at(votes, ii[grp], share)
        np.add.at(votes, jj[grp], share)
        left -= 2 * grp.sum() * share
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
            t = np.where(
                tot > 0,
                (pos - e_pos) ** 2 / np.where(e_pos > 0, e_pos, 1)
                + (neg - e_neg) ** 2 / np.where(e_neg > 0, e_neg, 1),
                0.0,
            )
        chi2: np.ndarray = t.sum(-1)
        return chi2
    # mutual information (nats) between code and label
    with np.errstate(divide="ignore", invalid="ignore"):
        pc = tot / n
        terms = []
        for cnt, nl in ((pos, n_pos), (neg, n - n_pos)):
            p = cnt / n
            terms.append(np.where(p > 0, p * np.log(p / (pc * nl / n)), 0.0))
    mi: np.ndarray = (terms[0] + terms[1]).sum(-1)
    return mi


def code_shift_scores(
    codes: Int[np.ndarray, "n heads"],
    labels: Bool[np.ndarray, " n"],
    pairs: Int[np.ndarray, " n"] | None = None,
    n_perm: int = 200,
    statistic: Literal["chi2", "mi"] = "chi2",
    seed: int = 0,
) -> dict[str, np.ndarray]:
    """Per head: does its code distribution differ between positives and negatives?

    ``pairs[i]`` is the pair id of prompt ``i`` (positives and their counterfactuals share
    one); the null flips labels within pairs (or permutes them when ``pairs`` is None).
    Returns :func:`null_summary`'s ``{"z", "stat", "p", "score"}`` per head."""
    rng = np.random.default_rng(seed)
    labels = np.asarray(labels, dtype=bool)
    n, H = codes.shape
    n_pos = int(labels.sum())
    perm = np.empty((n_perm, n), dtype=bool)
    for b in range(n_perm):
        if pairs is None:
            perm[b] = rng.permutation(labels)
        else:
            flip = rng.random(int(pairs.max()) + 1) < 0.5
            perm[b] = labels ^ flip[pairs]
    # rows that carry the same label in the data and in every permutation (a prompt's positions)
    # move together: count them once per group, which keeps the arrays [groups, codes] small
    history, grp = np.unique(np.c_[labels, perm.T], axis=0, return_inverse=True)  # [groups, 1 + B]
    grp = grp.reshape(-1)
    g_lab, g_perm = (
        history[:, 0].astype(float),
        history[:, 1:].T.astype(float),
    )  # [groups], [B, groups]
    stat, null = np.zeros(H), np.zeros((n_perm, H))
    for h in range(H):
        _, inv = np.unique(codes[:, h], return_inverse=True)
        C = np.zeros((len(history), int(inv.max()) + 1))  # [groups, codes of this head]
        np.add.at(C, (grp, inv.reshape(-1)), 1.0)
        tot = C.sum(0)
        stat[h] = _stat(g_lab @ C, tot, n_pos, n, statistic)
        null[:, h] = _stat(g_perm @ C, tot, n_pos, n, statistic)
    return null_summary(stat, null)


def null_summary(
    stat: Float[np.ndarray, " heads"], null: Float[np.ndarray, "perm heads"]
) -> dict[str, np.ndarray]:
    """A statistic against its permutation null, per head: ``z`` (standardised), ``p`` (one-sided,
    ``(1 + #null >= stat) / (B + 1)``) and ``score``, the mid-p rank of the statistic in its null
    (``(#null < stat + #null == stat / 2) / B``, ties broken by ``z``). ``score`` is what the
    analyses rank heads by: on data with no label information it is uniform on [0, 1] for
    every head, and exactly 0.5 for a head whose null is degenerate, so no kind of head is
    favoured; a z-score is not (its null is skewed, and a head that never changes scores 0)."""
    sd = null.std(0)
    z = np.where(sd > 1e-12, (stat - null.mean(0)) / np.where(sd > 1e-12, sd, 1), 0.0)
    tol = 1e-9 * np.maximum(np.abs(stat), 1.0)[None]
    equal = np.abs(null - stat[None]) <= tol
    less = (null < stat[None]) & ~equal
    p = (1 + (~less).sum(0)) / (len(null) + 1)
    # tie-break within (-5e-4, 5e-4): below half of the 1/(2B) grid of mid-p values for B < 1000
    score = (less.sum(0) + 0.5 * equal.sum(0)) / len(null) + 5e-4 * z / (1 + np.abs(z)) * (
        len(null) < 1000
    )
    return {"z": z, "stat": stat, "p": p, "score": score}


def shuffled_labels(
    labels: Bool[np.ndarray, " n"], pairs: Int[np.ndarray, " n"] | None, seed: int
) -> Bool[np.ndarray, " n"]:
    """Labels flipped within each pair at random (or permuted): the null of a *magnitude*
    score computed from the real pairs (swapping a pair flips the sign of its effect). Not a
    null for code scorers: a label-free head property survives it (see
    :func:`relabel_across_pairs`)."""
    rng = np.random.default_rng(seed)
    labels = np.asarray(labels, dtype=bool)
    if pairs is None:
        return rng.permutation(labels)
    flipped: np.ndarray = labels ^ (rng.random(int(pairs.max()) + 1) < 0.5)[pairs]
    return flipped


def relabel_across_pairs(
    n_pairs: int, seed: int
) -> tuple[Bool[np.ndarray, " n"], Int[np.ndarray, " n"]]:
    """Null-control labels and pairs for ``2 * n_pairs`` prompts: a random half of the prompts,
    whatever their real label and pair, is called positive, and each is paired with a random
    prompt of the other half: ``(labels [2N], pairs [2N])``. Scores recomputed on these carry
    no label information, so a scorer's ROC AUC against the ground truth must sit near 0.5,
    unless the scorer reads a label-free property of the heads (code variety, output norm or
    variance) that happens to predict the circuit. Flipping labels *within* the real pairs
    cannot show that: a head that differs between prompts but not within pairs looks the same
    under every flip."""
    rng = np.random.default_rng(seed)
    perm = rng.permutation(2 * n_pairs)
    labels = np.zeros(2 * n_pairs, dtype=bool)
    labels[perm[:n_pairs]] = True
    pairs = np.empty(2 * n_pairs, dtype=np.int64)
    pairs[perm[:n_pairs]] = np.arange(n_pairs)
    pairs[perm[n_pairs:]] = rng.permutation(n_pairs)
    return labels, pairs


# ------------------------------------------------------------------ paired scorers (ours)
def pair_rows(
    labels: Bool[np.ndarray, " n"], pairs: Int[np.ndarray, " n"]
) -> tuple[Int[np.ndarray, " n_pairs"], Int[np.ndarray, " n_pairs"]]:
    """``(pos, neg)``: per pair id (ascending), the row labelled positive and the row labelled
    negative. Every pair must hold exactly one of each."""
    labels, pairs = np.asarray(labels, dtype=bool), np.asarray(pairs)
    ids = np.unique(pairs)
    pos, neg = np.full(len(ids), -1), np.full(len(ids), -1)
    where = np.searchsorted(ids, pairs)
    pos[where[labels]], neg[where[~labels]] = np.flatnonzero(labels), np.flatnonzero(~labels)
    if (pos < 0).any() or (neg < 0).any() or np.bincount(where, minlength=len(ids)).max() != 2:
        raise ValueError("each pair id must label exactly one row positive and one negative")
    return pos, neg


def code_flip_grams(
    codes: Int[np.ndarray, "n slots heads"],
    labels: Bool[np.ndarray, " n"],
    pairs: Int[np.ndarray, " n"],
) -> Float[np.ndarray, "heads n_pairs n_pairs"]:
    """Per head, the Gram matrix ``V V^T`` of the pairs' code flips: ``V[i]`` is the one-hot of
    the positive's (slot, code)s minus that of its counterfactual's (zero where the code does
    not flip), summed over slots."""
    pos, neg = pair_rows(labels, pairs)
    n, S, H = codes.shape
    out = np.zeros((H, len(pos), len(pos)))
    for h in range(H):
        _, inv = np.unique(
            codes[:, :, h] + (int(codes.max()) + 2) * np.arange(S)[None], return_inverse=True
        )
        inv = inv.reshape(n, S)
        V = np.zeros((len(pos), int(inv.max()) + 1))  # [pairs, keyed codes]
        np.add.at(V, (np.arange(len(pos))[:, None], inv[pos]), 1.0)
        np.add.at(V, (np.arange(len(pos))[:, None], inv[neg]), -1.0)
        out[h] = V @ V.T
    return out


def feature_diff_grams(
    features: Float[torch.Tensor, "n slots heads d"],
    labels: Bool[np.ndarray, " n"],
    pairs: Int[np.ndarray, " n"],
) -> Float[np.ndarray, "heads n_pairs n_pairs"]:
    """The same Gram matrices for the raw head-output differences (positive minus counterfactual,
    all slots concatenated): the SAE-free control of :func:`code_flip_grams`."""
    pos, neg = pair_rows(labels, pairs)
    x = torch.as_tensor(features).double()
    D = (x[pos] - x[neg]).permute(2, 0, 1, 3).flatten(2)  # [heads, pairs, slots*d]
    return (D @ D.transpose(1, 2)).numpy()


def paired_shift_scores(
    grams: Float[np.ndarray, "heads n_pairs n_pairs"], n_perm: int = 200, seed: int = 0
) -> dict[str, np.ndarray]:
    """Does a head's output move the same way from each positive to its counterfactual?
    Statistic ``|sum_i V_i|^2 = 1' G 1`` per head (``G = V V^T`` from :func:`code_flip_grams`
    or :func:`feature_diff_grams`); the null flips the sign of each pair's ``V_i`` at random
    (swaps positive and counterfactual), ``e' G e``. A head whose code flips often but in
    no consistent direction scores low. Returns :func:`null_summary`'s dict per head."""
    rng = np.random.default_rng(seed)
    H, N, _ = grams.shape
    stat = grams.sum((1, 2))
    eps = rng.choice([-1.0, 1.0], size=(n_perm, N))
    null = np.einsum("bn,hnm,bm->bh", eps, grams, eps)  # [B, heads]
    return null_summary(stat, null)


def latent_attribution(
    sae: SAE,
    clean: Float[torch.Tensor, "N slots heads d"],
    corrupt: Float[torch.Tensor, "N slots heads d"],
    grads: Float[torch.Tensor, "N slots heads d"],
) -> Float[np.ndarray, "N heads"]:
    """Per pair and head: the SAE latents' change from the positive to its counterfactual, each
    weighted by its effect on the metric (its decoder direction dotted with the metric's
    gradient w.r.t. the head's output on the positive), summed over latents and slots. The
    first-order effect of patching the head's *reconstructed* output, the SAE version of
    attribution patching (which uses the raw output difference)."""
    with torch.no_grad():
        W = sae.folded()["W_dec"]  # [d_sae, d]: raw-scale decoder rows
        dt = W.dtype
        df = sae.encode(corrupt.to(dt)) - sae.encode(clean.to(dt))  # [N, slots, heads, d_sae]
        w = grads.to(dt) @ W.T  # [N, slots, heads, d_sae]: metric change per unit of each latent
        return torch.einsum("nshk,nshk->nh", df, w).double().numpy()


def output_grads(
    m: Model, tokens: Int[torch.Tensor, "n pos"], metric: Metric, batch_size: int = 64
) -> Float[torch.Tensor, "n pos layers d_model"]:
    """Gradient of ``metric`` w.r.t. each layer's attention output (``m.hook("attn_out", l)``),
    which is the gradient w.r.t. every head's output in that layer:
    ``[n, pos, layers, d_model]``."""
    from interp.tracing.gradients import metric_grads

    names = [m.hook("attn_out", layer) for layer in range(m.n_layers)]
    grads = metric_grads(m, tokens, metric, names, batch_size=batch_size)
    return torch.stack([grads[k] for k in names], 2)  # [n, pos, layers, d_model]


def planted_features(
    features: Float[torch.Tensor, "n slots heads d"],
    labels: Bool[np.ndarray, " n"],
    pairs: Int[np.ndarray, " n"],
    frac: float = 0.25,
    strength: float = 1.0,
    seed: int = 0,
) -> tuple[Float[torch.Tensor, "n slots heads d"], Bool[np.ndarray, " heads"]]:
    """A positive control with a known answer, built from real head features: every head's
    positive and counterfactual are swapped in a random half of the pairs (independently per
    head), which erases what the heads really know about the label but keeps their variety;
    then ``ceil(frac * heads)`` planted heads get a fixed random direction, of ``strength``
    times the heads' RMS norm, added at one slot of every positive. Returns the features and
    the planted heads ``[heads]``."""
    rng = np.random.default_rng(seed)
    orig = torch.as_tensor(features)
    x = orig.clone()
    n, S, H, d = x.shape
    pos, neg = pair_rows(labels, pairs)
    for h in range(H):
        swap = rng.random(len(pos)) < 0.5
        a, b = pos[swap], neg[swap]
        x[a, :, h], x[b, :, h] = orig[b, :, h], orig[a, :, h]
    truth = top_fraction(rng.random(H), frac)
    rms = float(x.pow(2).sum(-1).mean().sqrt())
    for planted in np.flatnonzero(truth):
        u = torch.as_tensor(rng.standard_normal(d), dtype=x.dtype)
        x[pos, int(rng.integers(S)), planted] += strength * rms * u / u.norm()
    return x, truth
