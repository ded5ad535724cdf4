"""SAE circuit scorers (golden values), ROC AUC, the null control, and a tiny end-to-end run
on two models (a GPT-2-architecture save_pretrained directory and an interp transformer)."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
import torch

import interp
from interp.methods.sae_scores import (
    best_f1,
    code_shift_scores,
    paper_edge_scores,
    paper_node_scores,
    roc_auc,
    roc_curve,
    shuffled_labels,
    spearman,
    top_fraction,
)


def test_paper_node_score_counts_codes_seen_only_in_positives():
    codes = np.array([[1, 5, 7],
                      [2, 5, 7],
                      [3, 5, 8],   # positives above, negatives below
                      [1, 5, 9],
                      [4, 6, 9],
                      [4, 6, 9]])
    labels = np.array([1, 1, 1, 0, 0, 0], bool)
    counts = np.array([len({1, 2, 3} - {1, 4}), len({5} - {5, 6}), len({7, 8} - {9})])
    assert counts.tolist() == [2, 0, 2]
    expect = np.exp(counts) / np.exp(counts).sum()
    np.testing.assert_allclose(paper_node_scores(codes, labels), expect)


def test_paper_edge_score_votes_for_the_heads_of_top_pairs():
    # Heads 0 and 1 change code together on positives; head 2 is constant.
    codes = np.array([[1, 1, 0], [2, 2, 0], [3, 3, 0], [0, 0, 0], [0, 0, 0], [0, 0, 0]])
    labels = np.array([1, 1, 1, 0, 0, 0], bool)
    codes[3:, 2] = 9  # head 2: code 0 on positives, 9 on negatives
    scores, E = paper_edge_scores(codes, labels, top_k=2)
    # every ordered pair has 3 positive-only code pairs; ties go by index, so (0, 1) is first
    assert E[0, 1] == E[1, 0] == E[0, 2] == E[2, 1] == 3 and np.diag(E).sum() == 0
    assert scores[0] == scores[1] > scores[2]
    codes[:, 2] = 5  # head 2 constant on both sides: pairs with it carry only the other head's change
    codes[3:, :2] = [[1, 1], [2, 2], [4, 4]]  # negatives reuse two of the positive code pairs
    scores, E = paper_edge_scores(codes, labels, top_k=2)
    assert E[0, 1] == 1 and E[0, 2] == 1 and E[1, 2] == 1


def test_code_shift_scores_separate_label_dependent_heads():
    rng = np.random.default_rng(0)
    n = 30
    labels = np.r_[np.ones(n, bool), np.zeros(n, bool)]
    pairs = np.r_[np.arange(n), np.arange(n)]
    codes = np.stack([np.where(labels, 1, 2),                       # perfectly label-dependent
                      np.zeros(2 * n, int),                        # constant
                      rng.integers(0, 4, 2 * n),                   # noise
                      np.where(labels, rng.integers(0, 3, 2 * n), rng.integers(2, 5, 2 * n))], 1)  # partial
    out = code_shift_scores(codes, labels, pairs, n_perm=300, seed=0)
    z, p = out["z"], out["p"]
    assert z[0] > 5 and p[0] <= 1 / 301 + 1e-12
    assert z[1] == 0 and p[1] == 1.0
    assert abs(z[2]) < 3 and z[3] > 3
    mi = code_shift_scores(codes, labels, pairs, n_perm=100, statistic="mi", seed=0)["z"]
    assert mi[0] > mi[2] and mi[3] > mi[2]


def test_roc_auc_midranks_and_helpers():
    truth = np.array([1, 1, 0, 0, 0], bool)
    assert roc_auc(np.array([5, 4, 3, 2, 1]), truth) == 1.0
    assert roc_auc(np.ones(5), truth) == 0.5  # all tied: chance, not 0 or 1
    rng = np.random.default_rng(1)
    s, t = rng.integers(0, 4, 40).astype(float), rng.random(40) < 0.4
    brute = np.mean([1.0 if a > b else 0.5 if a == b else 0.0 for a, b in itertools.product(s[t], s[~t])])
    assert abs(roc_auc(s, t) - brute) < 1e-12
    fpr, tpr = roc_curve(s, t)
    assert abs(np.trapezoid(tpr, fpr) - brute) < 1e-12
    assert top_fraction(np.array([0.1, 0.9, 0.5, 0.2]), 0.5).tolist() == [False, True, True, False]
    assert best_f1(np.array([3, 2, 1, 0]), np.array([1, 1, 0, 0], bool))["f1"] == 1.0
    assert abs(spearman(np.arange(5), np.arange(5) ** 2) - 1) < 1e-12


def test_null_control_sits_near_half():
    """Circuit heads' codes depend on the label; shuffled labels must give AUC ~ 0.5."""
    n, H = 20, 16
    truth = np.zeros(H, bool)
    truth[:6] = True
    labels = np.r_[np.ones(n, bool), np.zeros(n, bool)]
    pairs = np.r_[np.arange(n), np.arange(n)]
    real, null_ours, null_paper = [], [], []
    for seed in range(20):
        rng = np.random.default_rng(seed)
        codes = rng.integers(0, 3, (2 * n, H))
        codes[:, :6] += np.where(labels, 2, 0)[:, None] * (rng.random((2 * n, 6)) < 0.7)
        real.append(roc_auc(code_shift_scores(codes, labels, pairs, 100, seed=seed)["z"], truth))
        fake = shuffled_labels(labels, pairs, seed)
        null_ours.append(roc_auc(code_shift_scores(codes, fake, pairs, 100, seed=seed)["z"], truth))
        null_paper.append(roc_auc(paper_node_scores(codes, fake), truth))
    assert np.mean(real) > 0.9
    assert abs(np.mean(null_ours) - 0.5) < 0.15
    assert abs(np.mean(null_paper) - 0.5) < 0.15


def _save_models(tmp_path):
    from transformers import GPT2Config, GPT2LMHeadModel

    from interp.data.sae_circuits import template_vocab
    from interp.data.tokenizer import word_tokenizer
    from interp.models.transformer import build_transformer
    from interp.tracing.model import Model
    from tests.conftest import build_spec

    tok = word_tokenizer(template_vocab())
    torch.manual_seed(0)
    GPT2LMHeadModel(GPT2Config(vocab_size=len(tok), n_embd=32, n_layer=2, n_head=4, n_positions=32,
                               bos_token_id=0, eos_token_id=2)).eval().save_pretrained(tmp_path / "gpt2")
    tok.save_pretrained(tmp_path / "gpt2")
    spec = build_spec(n_layers=3, d_vocab=len(tok), init_seed=1)
    Model(build_transformer(spec, tokenizer=tok), backend="tl", tokenizer=tok, kind="transformer", model_id="tiny",
          spec={"builder": "transformer", "spec": spec.model_dump(mode="json")}).save(tmp_path / "interp")
    return [str(tmp_path / "gpt2"), str(tmp_path / "interp")]


@pytest.mark.slow
def test_tiny_end_to_end_on_two_models(tmp_path):
    models = _save_models(tmp_path)
    cfg = dict(models=models, tasks=["ioi", "induction"], n_prompts=6, n_sae_prompts=6, n_seeds=2,
               prompt_sweep=[4], sweep_seeds=1, n_gt_prompts=8, d_sae=32, sae_steps=40, n_perm=20, seed=3)
    result = interp.analyses.get("sae_circuits").run(cfg)
    crit = {c.name: c for c in result.criteria}
    assert {"null_control_auc_near_half", "attribution_matches_activation_patching", "sae_pipeline_seconds",
            "sae_fvu", "paper_node_auc", "paper_node_vs_attribution", "ours_beats_paper_node"} <= set(crit)
    assert crit["attribution_matches_activation_patching"].holds
    assert crit["sae_pipeline_seconds"].holds
    assert result.arrays["auc"].shape == (2, 2, 2, 6, 3)
    auc = result.arrays["auc"]
    assert np.all((auc >= 0) & (auc <= 1))
    assert {"auc_summary", "heatmaps", "roc", "auc_vs_prompts", "null_control", "runtime"} <= set(result.figures)
    # the GPT-2 model has 8 heads, the interp one 12: per-model arrays keep their own sizes
    assert result.arrays["gt_effect__m0__ioi"].shape == (8,)
    assert result.arrays["gt_effect__m1__ioi"].shape == (12,)
    assert result.arrays["score__ours__m1__induction"].shape == (12,)
    result.save(tmp_path / "run")
    back = interp.Result.load(tmp_path / "run")
    np.testing.assert_array_equal(back.arrays["auc"], auc)
