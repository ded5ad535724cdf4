"""n-gram heads: the head scorer on hand-made patterns and on two models, the n-gram layer,
the baselines computed two ways, the metrics, ablation edits, and the analysis end to end."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from interp.analyses.ngram_heads import (
    ablation_edits,
    head_means,
    model_head_scores,
    next_token_metrics,
    ngram_baseline,
    ngram_baseline_loop,
    ngram_head_scores,
    ridge_probe_r2,
)
from interp.data.ngram_heads import PAD, VOCAB_SIZE, DFATables, dfa_set, from_string, pad_batch, sample_prompts
from interp.models.ngram_layer import NgramLSTM, NgramLSTMSpec, ngram_pattern


def _prompts(n=6, seed=0):
    dfas = dfa_set(n, seed=seed)
    rng = np.random.default_rng(seed)
    prompts = sample_prompts(DFATables(dfas), np.arange(n), rng)
    return pad_batch(prompts), np.array([len(p) for p in prompts])


def _manual_scores(tokens, pattern, n):
    """Per head: mean over queries with a match of the attention on matching keys (a loop)."""
    B, H, T, _ = pattern.shape
    mass, uni, count = np.zeros(H), 0.0, 0
    for b in range(B):
        x = tokens[b].tolist()
        for i in range(T):
            if x[i] == PAD:
                continue
            keys = [j for j in range(1, i + 1) if x[j - 1] == x[i] and (n == 2 or (j >= 2 and i >= 1 and x[j - 2] == x[i - 1]))]
            if not keys:
                continue
            count += 1
            uni += len(keys) / (i + 1)
            mass += pattern[b, :, i, keys].sum(-1).numpy()
    return mass / count, (mass / count) / (uni / count)


def test_ngram_pattern_by_hand():
    x = torch.tensor([from_string("abab").tolist()])
    A = ngram_pattern(x, 1)[0]
    # query 2 ("a"): key 1 follows an "a"; query 3 ("b"): key 2 follows a "b"; j = i counts too
    expected = torch.zeros(4, 4)
    expected[2, 1] = 1
    expected[3, 2] = 1
    assert torch.equal(A, expected)
    x = torch.tensor([from_string("aaa").tolist()])
    np.testing.assert_allclose(ngram_pattern(x, 1)[0].numpy(), [[0, 0, 0], [0, 1, 0], [0, .5, .5]])
    np.testing.assert_allclose(ngram_pattern(x, 2)[0].numpy(), [[0, 0, 0], [0, 0, 0], [0, 0, 1]])


def test_head_scorer_on_hand_made_patterns():
    x = torch.tensor([from_string("abcabcab").tolist()])
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
    s3 = ngram_head_scores(x, pat, 3)  # queries i = 4..7; at i = 6 only j = 4 of j = 1, 4 also matches x_{i-1}
    assert s3["count"][0] == 4 and s3["mass"][0] == pytest.approx((1 + 1 + 0.5 + 1) / 4)


def test_head_scorer_matches_a_loop_on_tiny_gpt(tiny_gpt):
    import interp

    tokens, lengths = _prompts(4)
    _, acts = interp.trace(tiny_gpt, tokens[:, :32], capture=["blocks.1.attn.hook_pattern"])
    pat = acts["blocks.1.attn.hook_pattern"]
    for n in (2, 3):
        s = ngram_head_scores(tokens[:, :32], pat, n)
        mass, ratio = _manual_scores(tokens[:, :32], pat, n)
        np.testing.assert_allclose(s["mass"], mass, rtol=1e-5)
        np.testing.assert_allclose(s["ratio"], ratio, rtol=1e-5)
    # pooled over batches equals one batch (model_head_scores pools sums)
    m_scores = model_head_scores(tiny_gpt, tokens[:, :32], np.minimum(lengths, 32), batch_size=2)
    whole = ngram_head_scores(tokens[:, :32], pat, 2)
    np.testing.assert_allclose(m_scores[2]["mass"][1], whole["mass"], rtol=1e-5)


def test_head_scorer_on_the_ngram_layer_of_an_lstm():
    """Second model: the hard-wired m=1 layer is a perfect 2-gram head, seen through its hook."""
    import interp

    model = NgramLSTM(NgramLSTMSpec(d_vocab=VOCAB_SIZE, d_hidden=16, ngram_orders=[1, 2]))
    m = interp.wrap(model, model_id="ngram_lstm")
    tokens, lengths = _prompts(3, seed=1)
    scores = model_head_scores(m, tokens, lengths, batch_size=2)
    assert scores[2]["mass"].shape == (2, 1)
    assert scores[2]["mass"][0, 0] == pytest.approx(1.0)  # m=1 -> all mass on 2-gram matches
    assert scores[3]["mass"][1, 0] == pytest.approx(1.0)  # m=2 -> all mass on 3-gram matches
    assert scores[2]["ratio"][0, 0] > 1.0


def test_lstm_fused_path_equals_unrolled_and_edits_feed_forward():
    import interp

    model = NgramLSTM(NgramLSTMSpec(d_vocab=VOCAB_SIZE, d_hidden=16, n_layers=2, ngram_orders=[1]))
    m = interp.wrap(model, model_id="ngram_lstm")
    tokens, _ = _prompts(2)
    fused, _ = interp.trace(m, tokens)
    unrolled, acts = interp.trace(m, tokens, capture=["blocks.1.rnn.hook_h"])
    assert acts["blocks.1.rnn.hook_h"].shape == (*tokens.shape, 16)
    assert (fused - unrolled).abs().max() < 1e-5
    edited, _ = interp.trace(m, tokens, edits={"blocks.0.rnn.hook_h": torch.zeros_like})
    assert (edited - fused).abs().max() > 1e-3


def test_ngram_baseline_vectorised_equals_loop():
    tokens, lengths = _prompts(6, seed=2)
    for n in (2, 3):
        pred = ngram_baseline(tokens, n).argmax(-1)
        for i in range(len(tokens)):
            loop = ngram_baseline_loop(tokens[i, : lengths[i]].tolist(), n)
            assert pred[i, : lengths[i]].tolist() == loop


def test_metrics_by_hand():
    valid = torch.zeros(1, 2, VOCAB_SIZE, dtype=torch.bool)
    valid[0, 0, 0] = True  # only "a" is valid
    valid[0, 1, [0, 1]] = True  # "a" or "b"
    probs = torch.zeros(1, 2, VOCAB_SIZE)
    probs[0, 0, [0, 1]] = 0.5  # TVD 0.5, greedy "a" (first max) is valid
    probs[0, 1, 2] = 1.0  # TVD 1, greedy "c" invalid
    out = next_token_metrics(probs, valid, torch.tensor([[True, True]]))
    assert out["correct"].tolist() == [[1.0, 0.0]]
    np.testing.assert_allclose(out["tvd"].numpy(), [[0.5, 1.0]])


def test_ablation_edits_on_tiny_gpt(tiny_gpt):
    import interp
    from interp.tracing.trace import edit_heads

    tokens, lengths = _prompts(4)
    tokens, lengths = tokens[:, :32], np.minimum(lengths, 32)
    means = head_means(tiny_gpt, tokens, lengths, batch_size=4)
    clean, _ = interp.trace(tiny_gpt, tokens)
    nothing, _ = interp.trace(tiny_gpt, tokens, edits={"blocks.0.attn.hook_z": edit_heads([], torch.zeros_like)})
    assert torch.equal(clean, nothing)
    ablated, acts = interp.trace(tiny_gpt, tokens, capture=["blocks.1.attn.hook_z"],
                                 edits=ablation_edits([(1, 2)], means, "mean"))
    z = acts["blocks.1.attn.hook_z"]
    assert torch.allclose(z[:, :, 2], means["blocks.1.attn.hook_z"][2].expand_as(z[:, :, 2]))
    assert (ablated - clean).abs().max() > 0


def test_ridge_probe_recovers_a_linear_target():
    rng = np.random.default_rng(0)
    X = rng.normal(size=(400, 5))
    Y = X @ rng.normal(size=(5, 3))
    train = np.arange(400) < 300
    assert ridge_probe_r2(X, Y, train, 1e-6) > 0.999
    assert ridge_probe_r2(X, rng.normal(size=(400, 3)), train, 1e-2) < 0.1


@pytest.mark.slow
def test_ngram_heads_end_to_end_tiny():
    import interp

    result = interp.analyses.get("ngram_heads").run(dict(
        transformer="zoo:icll-transformer-tiny", lstm="zoo:icll-lstm-tiny", lstm_ngram="zoo:icll-lstm-ngram-tiny",
        n_test_dfas=24, n_ablation_prompts=12, random_draws=2, batch_size=12, max_probe_positions=2000))
    crit = {c.name: c for c in result.criteria}
    sanity = [c for c in crit.values() if c.kind == "sanity"]
    assert len(sanity) >= 8 and all(c.holds for c in sanity), [c for c in sanity if not c.holds]
    for name in ("transformer_beats_lstm_accuracy", "transformer_lower_tvd_than_lstm", "ngram_head_in_layer_ge1",
                 "top_ngram_heads_ablation_beats_random", "ngram_layer_lifts_lstm"):
        assert crit[name].kind == "claim" and crit[name].value is not None
    assert "2x TVD" in result.metrics["tvd_note"]
    assert result.metrics["tvd_l1_as_in_paper"]["lstm"] == pytest.approx(2 * result.metrics["tvd"]["lstm"])
    assert set(result.figures) == {"accuracy_tvd", "accuracy_by_position", "head_scores", "attention", "ablation",
                                   "probe"}
    assert result.arrays["head_mass_2gram"].shape == (2, 2)
    # the dashboard panel only reads the result
    from tests.conftest import load_panel

    dashboard = load_panel("ngram_heads")

    calls = []

    class FakeSt:
        def __getattr__(self, name):
            return lambda *a, **k: calls.append(name)

    dashboard(result, FakeSt())
    assert "dataframe" in calls
