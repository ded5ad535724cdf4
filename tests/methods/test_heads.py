"""Head scorers and head ablation on hand-built patterns and the tiny transformer: golden
values by hand, a planted n-gram head is found, batching changes nothing, ablating nothing
(or a head by its own mean) changes nothing."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import interp
from interp.methods.heads import (
    ablation_edits,
    best_ngram_head,
    empty_head_edits,
    head_means,
    length_batches,
    model_head_scores,
    ngram_criterion,
    ngram_head_scores,
    pattern_hooks,
    rank_ngram_heads,
)
from interp.models.ngram_layer import ngram_pattern

PAD = 49  # a token id of tiny_gpt (d_vocab 50) used as padding here


def _padded(n=5, seed=0, vocab=6):
    """``[n, T]`` prompts of different lengths over a small alphabet (many repeats), PAD-padded."""
    g = torch.Generator().manual_seed(seed)
    lengths = np.array([12, 20, 7, 16, 20][:n])
    tokens = torch.full((n, int(lengths.max())), PAD)
    for i, L in enumerate(lengths):
        tokens[i, :L] = torch.randint(0, vocab, (int(L),), generator=g)
    return tokens, lengths


def _manual_scores(tokens, pattern, n, pad_id):
    """Per head: mean over queries with a match of the attention on matching keys (a loop)."""
    B, H, T, _ = pattern.shape
    mass, uni, count = np.zeros(H), 0.0, 0
    for b in range(B):
        x = tokens[b].tolist()
        for i in range(T):
            if x[i] == pad_id:
                continue
            keys = [
                j
                for j in range(1, i + 1)
                if x[j - 1] == x[i] and (n == 2 or (j >= 2 and i >= 1 and x[j - 2] == x[i - 1]))
            ]
            if not keys:
                continue
            count += 1
            uni += len(keys) / (i + 1)
            mass += pattern[b, :, i, keys].sum(-1).numpy()
    return mass / count, (mass / count) / (uni / count)


def test_scores_of_hand_built_patterns():
    x = torch.tensor([[0, 1, 2, 0, 1, 2, 0, 1]])  # "abcabcab"
    T = x.shape[1]
    perfect = ngram_pattern(x, 1)  # uniform over 2-gram matches
    uniform = torch.ones(T, T).tril()
    uniform = (uniform / uniform.sum(-1, keepdim=True))[None]
    prev = torch.zeros(1, T, T)
    prev[0, 0, 0] = 1
    prev[0, torch.arange(1, T), torch.arange(T - 1)] = 1  # previous-token head
    pat = torch.stack([perfect[0], uniform[0], prev[0]])[None]  # [1, 3 heads, T, T]
    s = ngram_head_scores(x, pat, 2)
    # queries with a match: i = 3..7; i = 6 ("a") and 7 ("b") have two matches each
    uniform_mass = np.mean([1 / 4, 1 / 5, 1 / 6, 2 / 7, 2 / 8])
    np.testing.assert_allclose(s["mass"], [1.0, uniform_mass, 0.0], atol=1e-6)
    np.testing.assert_allclose(s["uniform"], uniform_mass, atol=1e-6)
    np.testing.assert_allclose(s["ratio"][:2], [1 / s["uniform"][0], 1.0], rtol=1e-6)
    assert s["count"][0] == 5
    s3 = ngram_head_scores(
        x, pat, 3
    )  # queries i = 4..7; at i = 6 only j = 4 of j = 1, 4 also matches x_{i-1}
    assert s3["count"][0] == 4 and s3["mass"][0] == pytest.approx((1 + 1 + 0.5 + 1) / 4)
    # pad_id and query_mask leave queries out
    masked = ngram_head_scores(
        x, pat, 2, pad_id=2
    )  # the "c"s at 2 and 5 are not queries: i = 5 drops
    assert masked["count"][0] == 4
    only_last = torch.zeros_like(x, dtype=torch.bool)
    only_last[0, -1] = True
    assert ngram_head_scores(x, pat, 2, query_mask=only_last)["mass"][1] == pytest.approx(2 / 8)


def test_scorer_matches_a_loop_on_tiny_gpt(tiny_gpt):
    tokens, lengths = _padded()
    name = tiny_gpt.hook("pattern", 1)
    _, acts = interp.trace(tiny_gpt, tokens, capture=[name])
    for n in (2, 3):
        s = ngram_head_scores(tokens, acts[name], n, pad_id=PAD)
        mass, ratio = _manual_scores(tokens, acts[name], n, PAD)
        np.testing.assert_allclose(s["mass"], mass, rtol=1e-5)
        np.testing.assert_allclose(s["ratio"], ratio, rtol=1e-5)


def test_a_planted_ngram_head_is_found(tiny_gpt):
    """Head 2 of layer 1 is replaced (an edit at its hook_pattern) by a perfect 2-gram head:
    the scorer gives it all the mass, and best_ngram_head / rank_ngram_heads pick it."""
    tokens, lengths = _padded()
    planted = ngram_pattern(tokens, 1)  # [batch, query, key]

    def plant(p):
        p = p.clone()
        p[:, 2] = planted[:, : p.shape[2], : p.shape[3]].to(p.dtype)
        return p

    names = pattern_hooks(tiny_gpt)
    assert names == [tiny_gpt.hook("pattern", layer) for layer in range(tiny_gpt.n_layers)]
    _, acts = interp.trace(tiny_gpt, tokens, capture=names, edits={names[1]: plant})
    scores = {}
    for n in (2, 3):
        per_layer = [ngram_head_scores(tokens, acts[nm], n, pad_id=PAD) for nm in names]
        scores[n] = {k: np.stack([s[k] for s in per_layer]) for k in ("mass", "uniform", "ratio")}
    assert scores[2]["mass"][1, 2] == pytest.approx(1.0)
    assert scores[2]["ratio"][1, 2] == scores[2]["ratio"].max()
    best = best_ngram_head(scores, min_layer=1)
    assert (best["layer"], best["head"], best["n"]) == (1, 2, 2) and best["score"] >= 1.0
    assert rank_ngram_heads(scores)[0] == (1, 2)
    assert best["score"] == pytest.approx(float(ngram_criterion(scores[2])[1, 2]))


def test_batched_scores_and_means_equal_unbatched(tiny_gpt):
    tokens, lengths = _padded()
    assert sorted(np.concatenate(length_batches(lengths, 2)).tolist()) == list(range(len(lengths)))
    one = model_head_scores(tiny_gpt, tokens, lengths, batch_size=len(lengths), pad_id=PAD)
    many = model_head_scores(tiny_gpt, tokens, lengths, batch_size=2, pad_id=PAD)
    for n in (2, 3):
        for k in ("mass", "uniform", "ratio"):
            assert one[n][k].shape == (2, 4)
            np.testing.assert_allclose(many[n][k], one[n][k], rtol=1e-5)
    m1 = head_means(tiny_gpt, tokens, lengths, batch_size=len(lengths), pad_id=PAD)
    m2 = head_means(tiny_gpt, tokens, lengths, batch_size=1, pad_id=PAD)
    for name in m1:
        assert m1[name].shape == (4, 8)
        torch.testing.assert_close(m2[name], m1[name], rtol=1e-5, atol=1e-6)


def test_ablating_nothing_changes_nothing(tiny_gpt):
    tokens, lengths = _padded()
    clean, _ = interp.trace(tiny_gpt, tokens)
    nothing, _ = interp.trace(tiny_gpt, tokens, edits=empty_head_edits(tiny_gpt))
    assert torch.equal(clean, nothing)
    means = head_means(tiny_gpt, tokens, lengths, batch_size=5, pad_id=PAD)
    assert ablation_edits(tiny_gpt, [], means) == {}
    # a head replaced by its mean over the one position that mean came from is unchanged
    x = tokens[:1, :1]
    own = head_means(tiny_gpt, x, np.array([1]), batch_size=1)
    every = [(layer, h) for layer in range(tiny_gpt.n_layers) for h in range(4)]
    same, _ = interp.trace(tiny_gpt, x, edits=ablation_edits(tiny_gpt, every, own, "mean"))
    torch.testing.assert_close(same, interp.trace(tiny_gpt, x)[0], rtol=1e-5, atol=1e-5)


def test_mean_and_zero_ablation_set_the_head(tiny_gpt):
    tokens, lengths = _padded()
    means = head_means(tiny_gpt, tokens, lengths, batch_size=5, pad_id=PAD)
    clean, _ = interp.trace(tiny_gpt, tokens)
    z_name = tiny_gpt.hook("z", 1)
    for how in ("mean", "zero"):
        out, acts = interp.trace(
            tiny_gpt, tokens, capture=[z_name], edits=ablation_edits(tiny_gpt, [(1, 2)], means, how)
        )
        z = acts[z_name]
        want = (
            means[z_name][2].expand_as(z[:, :, 2])
            if how == "mean"
            else torch.zeros_like(z[:, :, 2])
        )
        assert torch.allclose(z[:, :, 2], want)
        assert (out - clean).abs().max() > 0


def test_random_head_sets_are_distinct_and_exhaustive_when_few():
    from interp.methods.heads import random_head_sets

    heads = [(layer, h) for layer in range(3) for h in range(2)]  # 6 heads -> 15 pairs
    rng = np.random.default_rng(0)
    some = random_head_sets(heads, 2, 8, rng)
    assert len(some) == 8 and len({frozenset(s) for s in some}) == 8
    every = random_head_sets(heads, 2, 20, rng)
    assert len(every) == 15 and len({frozenset(s) for s in every}) == 15


def test_ablation_significance_separates_a_real_effect_from_none():
    from interp.methods.heads import ablation_significance

    rng = np.random.default_rng(0)
    drops = rng.normal(0.02, 0.01, size=8)
    big = ablation_significance(0.3, drops)
    assert big["p"] < 1e-4 and big["p_rank"] == pytest.approx(1 / 9)
    typical = ablation_significance(
        float(np.median(drops)), drops
    )  # the top set no worse than a random one
    assert typical["p"] > 0.05 and typical["p_rank"] > 0.4
    flat = ablation_significance(0.0, [0.0, 0.0, 0.0])
    assert flat["p"] == 1.0
    one = ablation_significance(
        0.3, [0.0]
    )  # too few random sets: undefined, so a "p < 0.05" criterion fails
    assert np.isnan(one["p"]) and one["n"] == 1
