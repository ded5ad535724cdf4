"""Circuit scores from SAE codes (golden values), the permutation scorer against scipy /
scikit-learn statistics, the metrics against brute force (ties!), and the null control."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from interp.methods.sae_scores import (
    best_f1,
    code_shift_scores,
    pair_rows,
    paper_edge_scores,
    paper_node_scores,
    relabel_across_pairs,
    roc_auc,
    roc_curve,
    sae_codes,
    shuffled_labels,
    spearman,
    top_fraction,
)
from interp.methods.sae_scores.scorers import _stat


# ------------------------------------------------------------------ paper scores
def test_paper_node_score_counts_codes_seen_only_in_positives():
    codes = np.array(
        [
            [1, 5, 7],
            [2, 5, 7],
            [3, 5, 8],  # positives above, negatives below
            [1, 5, 9],
            [4, 6, 9],
            [4, 6, 9],
        ]
    )
    labels = np.array([1, 1, 1, 0, 0, 0], bool)
    counts = np.array([len({1, 2, 3} - {1, 4}), len({5} - {5, 6}), len({7, 8} - {9})])
    assert counts.tolist() == [2, 0, 2]
    expect = np.exp(counts) / np.exp(counts).sum()
    np.testing.assert_allclose(paper_node_scores(codes, labels), expect)


def test_paper_edge_score_votes_for_the_heads_of_top_pairs():
    # Heads 0 and 1 change code together on positives; on negatives they reuse the same codes
    # in other combinations, so only the pairs (0, 1) and (1, 0) have positive-only code pairs.
    codes = np.array(
        [[1, 1, 5, 7], [2, 2, 5, 7], [3, 3, 5, 7], [1, 2, 5, 7], [2, 3, 5, 7], [3, 1, 5, 7]]
    )
    labels = np.array([1, 1, 1, 0, 0, 0], bool)
    scores, E = paper_edge_scores(codes, labels)
    assert E[0, 1] == E[1, 0] == 3 and E.sum() == 6
    # the paper's k = heads**2 // 2 = 8 list entries: 4 from the top pairs, 4 shared by the 10 tied
    # zero-count pairs (0.2 each endpoint): heads 0, 1 get 2 + 4 * 0.2, heads 2, 3 get 6 * 0.2
    votes = np.log(scores / scores[2])
    np.testing.assert_allclose(votes, [1.6, 1.6, 0.0, 0.0], atol=1e-12)
    assert (
        paper_edge_scores(codes, labels, top_k=4)[0][2]
        == paper_edge_scores(codes, labels, top_k=4)[0][3]
    )


def test_paper_edge_score_ties_favour_no_head_by_its_index():
    """Relabelling the heads relabels the scores (the paper's argsort()[::-1] favours late
    heads)."""
    rng = np.random.default_rng(0)
    codes, labels = rng.integers(0, 2, (12, 6)), np.r_[np.ones(6, bool), np.zeros(6, bool)]
    for perm in (np.arange(6)[::-1], rng.permutation(6)):
        for k in (None, 3, 7):
            np.testing.assert_allclose(
                paper_edge_scores(codes[:, perm], labels, k)[0],
                paper_edge_scores(codes, labels, k)[0][perm],
                atol=1e-12,
            )
    same = np.zeros((12, 6), int)  # every pair tied at 0: every head equal
    np.testing.assert_allclose(paper_edge_scores(same, labels)[0], np.full(6, 1 / 6))


# ------------------------------------------------------------------ our scorer
def test_code_shift_scores_separate_label_dependent_heads():
    rng = np.random.default_rng(0)
    n = 30
    labels = np.r_[np.ones(n, bool), np.zeros(n, bool)]
    pairs = np.r_[np.arange(n), np.arange(n)]
    codes = np.stack(
        [
            np.where(labels, 1, 2),  # perfectly label-dependent
            np.zeros(2 * n, int),  # constant
            rng.integers(0, 4, 2 * n),  # noise
            np.where(labels, rng.integers(0, 3, 2 * n), rng.integers(2, 5, 2 * n)),
        ],
        1,
    )  # partial
    out = code_shift_scores(codes, labels, pairs, n_perm=300, seed=0)
    z, p = out["z"], out["p"]
    assert z[0] > 5 and p[0] <= 1 / 301 + 1e-12
    assert z[1] == 0 and p[1] == 1.0
    assert abs(z[2]) < 3 and z[3] > 3
    mi = code_shift_scores(codes, labels, pairs, n_perm=100, statistic="mi", seed=0)["z"]
    assert mi[0] > mi[2] and mi[3] > mi[2]


@settings(max_examples=40, deadline=None)
@given(st.integers(0, 2**16), st.integers(4, 40), st.integers(1, 5))
def test_statistics_equal_scipy_and_sklearn(seed, n, n_codes):
    """Our vectorised chi-squared and mutual information are the textbook ones, per head."""
    from scipy.stats import chi2_contingency
    from sklearn.metrics import mutual_info_score

    rng = np.random.default_rng(seed)
    labels = rng.random(n) < 0.5
    labels[:2] = [True, False]  # both classes present
    codes = rng.integers(0, n_codes, (n, 3))
    uniq, inv = np.unique(codes, return_inverse=True)
    onehot = np.zeros((n, 3, len(uniq)))
    onehot[np.arange(n)[:, None], np.arange(3)[None, :], inv.reshape(n, 3)] = 1
    tot, pos = onehot.sum(0), onehot[labels].sum(0)
    chi2, mi = (_stat(pos, tot, int(labels.sum()), n, kind) for kind in ("chi2", "mi"))
    for h in range(3):
        seen = tot[h] > 0  # scipy refuses codes that never occur at this head
        table = np.stack([pos[h, seen], tot[h, seen] - pos[h, seen]])
        want = chi2_contingency(table, correction=False).statistic if seen.sum() > 1 else 0.0
        assert chi2[h] == pytest.approx(want, abs=1e-9)
        assert mi[h] == pytest.approx(mutual_info_score(labels, codes[:, h]), abs=1e-12)


def test_shuffled_labels_flip_whole_pairs():
    labels = np.r_[np.ones(5, bool), np.zeros(5, bool)]
    pairs = np.r_[np.arange(5), np.arange(5)]
    fake = shuffled_labels(labels, pairs, seed=3)
    assert (fake[:5] != fake[5:]).all()  # each pair keeps one positive and one negative
    assert sorted(shuffled_labels(labels, None, seed=3)) == sorted(labels)


def test_sae_codes_are_argmax_latents_of_all_prompts():
    import torch

    g = torch.Generator().manual_seed(0)
    feats = torch.randn(12, 3, 8, generator=g)  # [prompts, heads, d]
    codes, report = sae_codes(feats, {"d_sae": 16}, {"steps": 20}, train_rows=np.arange(6))
    assert codes.shape == (12, 3) and report["n_rows"] == 6 * 3
    with torch.no_grad():
        f = report["sae"].encode(feats.reshape(-1, 8))
    want = np.where(f.max(-1).values.numpy() > 0, f.argmax(-1).numpy(), -1).reshape(12, 3)
    np.testing.assert_array_equal(codes, want)


def test_sae_codes_can_train_on_other_vectors_of_the_same_prompts():
    """The answer-position SAE trains on every position of its training prompts and codes (and is
    judged on) the answer vectors alone; a ``train_on`` of other prompts is refused."""
    import torch

    g = torch.Generator().manual_seed(0)
    every = torch.randn(12, 5, 3, 8, generator=g)  # [prompts, positions, heads, d]
    answer = every[:, -1:]  # [prompts, 1, heads, d]
    codes, report = sae_codes(
        answer, {"d_sae": 16}, {"steps": 20}, train_rows=np.arange(6), train_on=every
    )
    assert codes.shape == (12, 1, 3) and report["n_rows"] == 6 * 5 * 3  # trained on all 5 positions
    from interp.sae.train import evaluate_sae

    held = evaluate_sae(report["sae"], answer[6:].reshape(-1, 8))["fvu"]
    assert report["fvu_heldout"] == pytest.approx(
        held
    )  # judged on the answer vectors it did not see
    with pytest.raises(ValueError, match="same prompts"):
        sae_codes(answer, {"d_sae": 16}, {"steps": 2}, train_on=every[:5])


# ------------------------------------------------------------------ metrics
def _brute_auc(s, t):
    """Mann-Whitney by hand: every (positive, negative) pair, ties half."""
    return np.mean(
        [1.0 if a > b else 0.5 if a == b else 0.0 for a, b in itertools.product(s[t], s[~t])]
    )


def _brute_best_f1(s, t):
    """The loop this module used before scikit-learn: lowest threshold with the best F1."""
    best = {"f1": 0.0, "precision": 0.0, "recall": 0.0, "threshold": float("inf")}
    for thr in np.unique(s):
        pred = s >= thr
        tp = (pred & t).sum()
        if tp == 0:
            continue
        prec, rec = tp / pred.sum(), tp / t.sum()
        f1 = 2 * prec * rec / (prec + rec)
        if f1 > best["f1"]:
            best = {
                "f1": float(f1),
                "precision": float(prec),
                "recall": float(rec),
                "threshold": float(thr),
            }
    return best


def test_roc_auc_midranks_and_helpers():
    truth = np.array([1, 1, 0, 0, 0], bool)
    assert roc_auc(np.array([5, 4, 3, 2, 1]), truth) == 1.0
    assert roc_auc(np.ones(5), truth) == 0.5  # all tied: chance, not 0 or 1
    assert np.isnan(roc_auc(np.arange(5), np.zeros(5, bool)))  # one class: undefined
    rng = np.random.default_rng(1)
    s, t = rng.integers(0, 4, 40).astype(float), rng.random(40) < 0.4
    brute = _brute_auc(s, t)
    assert abs(roc_auc(s, t) - brute) < 1e-12
    fpr, tpr = roc_curve(s, t)
    assert fpr[0] == tpr[0] == 0 and fpr[-1] == tpr[-1] == 1 and len(fpr) == len(np.unique(s)) + 1
    assert abs(np.trapezoid(tpr, fpr) - brute) < 1e-12
    assert top_fraction(np.array([0.1, 0.9, 0.5, 0.2]), 0.5).tolist() == [False, True, True, False]
    assert best_f1(np.array([3, 2, 1, 0]), np.array([1, 1, 0, 0], bool))["f1"] == 1.0
    assert best_f1(np.arange(4), np.zeros(4, bool))["threshold"] == float("inf")
    assert abs(spearman(np.arange(5), np.arange(5) ** 2) - 1) < 1e-12
    assert np.isnan(spearman(np.ones(5), np.arange(5)))


tied_scores = st.lists(st.integers(0, 4), min_size=2, max_size=30)  # few values: many ties


@settings(max_examples=200, deadline=None)
@given(tied_scores, st.data())
def test_metrics_equal_brute_force_with_ties(scores, data):
    s = np.array(scores, float)
    t = np.array(data.draw(st.lists(st.booleans(), min_size=len(s), max_size=len(s))))
    if t.all() or not t.any():
        assert np.isnan(roc_auc(s, t))
        return
    assert roc_auc(s, t) == pytest.approx(_brute_auc(s, t), abs=1e-12)
    fpr, tpr = roc_curve(s, t)
    assert np.trapezoid(tpr, fpr) == pytest.approx(_brute_auc(s, t), abs=1e-12)
    assert best_f1(s, t) == _brute_best_f1(s, t)  # bit for bit, threshold included


@settings(max_examples=200, deadline=None)
@given(tied_scores, st.data(), st.sampled_from(["exp", "affine", "cube", "negate"]))
def test_roc_auc_is_invariant_to_a_monotone_transform(scores, data, transform):
    s = np.array(scores, float)
    t = np.array(data.draw(st.lists(st.booleans(), min_size=len(s), max_size=len(s))))
    if t.all() or not t.any():
        return
    f = {
        "exp": np.exp,
        "affine": lambda x: 3 * x - 7,
        "cube": lambda x: (x - 2) ** 3,
        "negate": lambda x: -x,
    }[transform]
    want = (
        1 - roc_auc(s, t) if transform == "negate" else roc_auc(s, t)
    )  # decreasing: the ranking flips
    assert roc_auc(f(s), t) == pytest.approx(want, abs=1e-12)
    if transform != "negate":
        assert spearman(f(s), np.arange(len(s))) == pytest.approx(
            spearman(s, np.arange(len(s))), nan_ok=True
        )


@settings(max_examples=100, deadline=None)
@given(tied_scores, st.data())
def test_spearman_is_pearson_of_midranks(a, data):
    from scipy.stats import rankdata

    a = np.array(a, float)
    b = np.array(data.draw(st.lists(st.integers(0, 3), min_size=len(a), max_size=len(a))), float)
    ra, rb = rankdata(a), rankdata(b)
    if ra.std() == 0 or rb.std() == 0:
        assert np.isnan(spearman(a, b))
    else:
        assert spearman(a, b) == pytest.approx(float(np.corrcoef(ra, rb)[0, 1]), abs=1e-12)


def test_null_control_sits_near_half():
    """Circuit heads' codes depend on the label; labels redrawn across pairs must give AUC ~ 0.5."""
    n, H = 20, 16
    truth = np.zeros(H, bool)
    truth[:6] = True
    labels = np.r_[np.ones(n, bool), np.zeros(n, bool)]
    pairs = np.r_[np.arange(n), np.arange(n)]
    real, null_ours = [], []
    for seed in range(20):
        rng = np.random.default_rng(seed)
        codes = rng.integers(0, 3, (2 * n, H))
        codes[:, :6] += np.where(labels, 2, 0)[:, None] * (rng.random((2 * n, 6)) < 0.7)
        real.append(
            roc_auc(code_shift_scores(codes, labels, pairs, 100, seed=seed)["score"], truth)
        )
        fake, fake_pairs = relabel_across_pairs(n, seed)
        null_ours.append(
            roc_auc(code_shift_scores(codes, fake, fake_pairs, 100, seed=seed)["score"], truth)
        )
    assert np.mean(real) > 0.9
    assert abs(np.mean(null_ours) - 0.5) < 0.15


def test_relabel_across_pairs_is_a_random_pairing():
    labels, pairs = relabel_across_pairs(10, seed=4)
    pos, neg = pair_rows(labels, pairs)  # raises unless each pair has one positive and one negative
    assert labels.sum() == 10 and len(pos) == 10
    assert (labels[:10] != labels[0]).any()  # not the real halves
    assert (np.abs(pos - neg) != 10).any()  # not the real pairs


def test_null_control_catches_a_label_free_leak():
    """The circuit heads differ from the others only in code *variety* (many codes across prompts,
    one code per pair, no label information). A scorer that reads variety (the paper's node score,
    the raw chi-squared statistic) keeps a high AUC when the labels are redrawn across pairs:
    the null control fails, as it must. Flipping labels within pairs hides that leak (every flip
    leaves each head's positive and negative codes identical); our mid-p score does not leak."""
    n, H = 25, 16
    truth = np.zeros(H, bool)
    truth[:5] = True
    labels = np.r_[np.ones(n, bool), np.zeros(n, bool)]
    pairs = np.r_[np.arange(n), np.arange(n)]
    cross = {"paper_node": [], "chi2_stat": [], "ours": []}
    within_chi2 = []
    for seed in range(10):
        rng = np.random.default_rng(seed)
        per_pair = np.where(truth, 12, 2)[None] * rng.random(
            (n, H)
        )  # variety by head, none by label
        codes = np.tile(
            per_pair.astype(int), (2, 1)
        )  # [2n, H]: positive and its negative share a code
        fake, fake_pairs = relabel_across_pairs(n, seed)
        cross["paper_node"].append(roc_auc(paper_node_scores(codes, fake), truth))
        shift = code_shift_scores(codes, fake, fake_pairs, 100, seed=seed)
        cross["chi2_stat"].append(roc_auc(shift["stat"], truth))
        cross["ours"].append(roc_auc(shift["score"], truth))
        flipped = shuffled_labels(labels, pairs, seed)
        within_chi2.append(
            roc_auc(code_shift_scores(codes, flipped, pairs, 100, seed=seed)["stat"], truth)
        )
    off = {k: abs(np.mean(v) - 0.5) for k, v in cross.items()}
    assert off["paper_node"] > 0.15 and off["chi2_stat"] > 0.15  # the leak is caught
    assert off["ours"] < 0.15
    assert abs(np.mean(within_chi2) - 0.5) < 0.05  # the within-pair null misses it
