"""Every general tool on every architecture we claim: a zoo transformer, GPT-2, GPT-NeoX (Pythia),
Llama with grouped-query attention and rotary positions, and a BERT encoder where it applies.

The Hugging Face models are built with random weights and saved with ``save_pretrained`` (no
download), then loaded the way a user loads a checkpoint. Each test checks an invariant, not a
shape."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import interp

ARCHS = ["zoo", "gpt2", "neox", "llama", "bert"]
CAUSAL = [a for a in ARCHS if a != "bert"]


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    from interp.models.transformer import build_transformer
    from interp.tracing.model import Model
    from tests.conftest import build_spec, load_hf_models

    out = load_hf_models(tmp_path_factory.mktemp("archs"), [a for a in ARCHS if a != "zoo"])
    spec = build_spec()
    out["zoo"] = Model(
        build_transformer(spec),
        backend="tl",
        kind="transformer",
        model_id="zoo-tiny",
        spec={"builder": "transformer", "spec": spec.model_dump(mode="json")},
    )
    return out


def _tokens(n=3, T=8, seed=0):
    return torch.randint(1, 50, (n, T), generator=torch.Generator().manual_seed(seed))


@pytest.mark.parametrize("arch", ARCHS)
def test_hook_names_identity_edit_and_batching(models, arch):
    m, x = models[arch], _tokens()
    resid = m.resid_names()
    assert (
        len(resid) == m.n_layers + 1
        and m.hook("z", 0) in m.hook_names
        and m.hook("pattern", -1) in m.hook_names
    )
    out, acts = interp.trace(m, x, capture=resid)
    same, _ = interp.trace(m, x, edits={m.hook("resid_post", 0): lambda a: a})
    torch.testing.assert_close(
        same, out, atol=0, rtol=0
    )  # an edit that returns its input changes nothing
    one, acts1 = interp.trace(m, x[1:2], capture=resid)
    torch.testing.assert_close(one, out[1:2], atol=1e-5, rtol=0)  # batched == unbatched
    zeroed, _ = interp.trace(m, x, edits={m.hook("z", 0): lambda a: torch.zeros_like(a)})
    assert not torch.allclose(zeroed, out)  # an ablation is seen downstream


@pytest.mark.parametrize("arch", ARCHS)
def test_collect_equals_trace(models, arch):
    m, x = models[arch], _tokens(5)
    names = [m.hook("resid_post", layer) for layer in range(m.n_layers)] + [m.hook("z", 1)]
    _, want = interp.trace(m, x, capture=names)
    store = interp.collect(m, x, hooks=names, batch_size=2)
    for n in names:
        torch.testing.assert_close(store[n], want[n], atol=1e-5, rtol=0)


@pytest.mark.parametrize("arch", CAUSAL)
def test_logit_lens_at_the_last_layer_is_the_output(models, arch):
    from interp.methods.lens import logit_lens

    m, x = models[arch], _tokens()
    lens = logit_lens(m, x)
    assert lens.final_gap < 1e-4


@pytest.mark.parametrize("arch", CAUSAL)
def test_patching_a_run_with_itself_changes_nothing_and_attribution_tracks_it(models, arch):
    from interp.methods.patching import activation_patching, attribution_patching

    m, clean = models[arch], _tokens(4, seed=1)
    corrupt = _tokens(4, seed=2)

    def metric(logits, idx):
        return logits[torch.arange(len(idx)), -1, clean[idx, -1]]

    self_patch = activation_patching(m, clean, metric, corrupt=clean)
    assert float(np.abs(np.asarray(self_patch)).max()) < 1e-4
    act = np.asarray(activation_patching(m, clean, metric, corrupt=corrupt, alpha=1e-3))
    attr = np.asarray(attribution_patching(m, clean, metric, corrupt=corrupt))
    assert act.shape == attr.shape == (4, m.n_layers, m.cfg.n_heads)
    assert (
        np.corrcoef(act.ravel(), attr.ravel())[0, 1] > 0.99
    )  # first order is exact at a small alpha


@pytest.mark.parametrize("arch", CAUSAL)
def test_head_scorer_and_knockout_of_nothing(models, arch):
    from interp.methods.heads import empty_head_edits, model_head_scores
    from interp.methods.knockout import knockout_logits

    m, x = models[arch], _tokens(4, 10)
    scores = model_head_scores(m, x, np.full(len(x), x.shape[1]), batch_size=2)
    assert scores[2]["mass"].shape == (m.n_layers, m.cfg.n_heads)
    assert np.all((scores[2]["mass"] >= 0) & (scores[2]["mass"] <= 1 + 1e-6))
    base, _ = interp.trace(m, x)
    edited, _ = interp.trace(m, x, edits=empty_head_edits(m))
    torch.testing.assert_close(edited, base, atol=0, rtol=0)
    nothing = torch.zeros(len(x), x.shape[1], x.shape[1], dtype=torch.bool)
    torch.testing.assert_close(
        knockout_logits(m, x, nothing, range(m.n_layers)), base, atol=1e-6, rtol=0
    )


@pytest.mark.parametrize("arch", ARCHS)
def test_a_probe_recovers_a_planted_linear_readout(models, arch):
    from interp.methods.probes import ridge_r2

    m, x = models[arch], _tokens(24, 8, seed=3)
    _, acts = interp.trace(m, x, capture=[m.hook("resid_post", 0)])
    X = acts[m.hook("resid_post", 0)].reshape(-1, m.cfg.d_model).numpy()
    w = np.random.default_rng(0).normal(size=(m.cfg.d_model, 2))
    train = np.random.default_rng(1).random(len(X)) < 0.7
    assert ridge_r2(X, X @ w, train, alpha=1e-6) > 0.99
    assert ridge_r2(X, np.random.default_rng(2).normal(size=(len(X), 2)), train, alpha=1e-2) < 0.2


def _head_features(m, x):
    """Every head's output ``hook_z`` ``[n, pos, layers * heads, d_head]``, as the SAE circuit
    scorers read it."""
    names = [m.hook("z", layer) for layer in range(m.n_layers)]
    _, acts = interp.trace(m, x, capture=names)
    return torch.cat([acts[n] for n in names], dim=2)


@pytest.mark.parametrize("arch", ARCHS)
def test_sae_circuit_scorers_find_heads_planted_in_real_head_outputs(models, arch):
    """The planted positive control on this architecture's own head outputs: the SAE-free paired
    scorer ranks the planted heads first, and the SAE code scorer finds them too."""
    from interp.methods.sae_scores import (
        code_flip_grams,
        feature_diff_grams,
        paired_shift_scores,
        planted_features,
        roc_auc,
        sae_codes,
        select_positions,
    )

    m = models[arch]
    n_pairs = 24  # 12 pairs passed on most random weights but not all (AUC 0.58 on one Llama draw)
    x = _tokens(2 * n_pairs, 8, seed=4)
    labels = np.arange(2 * n_pairs) < n_pairs
    pairs = np.r_[np.arange(n_pairs), np.arange(n_pairs)]
    feats = select_positions(
        _head_features(m, x), "answer", torch.full((len(x),), 7)
    )  # [n, 1, heads, d]
    assert feats.shape[2] == m.n_layers * m.cfg.n_heads
    planted, truth = planted_features(feats, labels, pairs, frac=0.25, strength=3.0, seed=0)
    raw = paired_shift_scores(feature_diff_grams(planted, labels, pairs), n_perm=100)["score"]
    assert roc_auc(raw, truth) == 1.0
    codes, report = sae_codes(
        planted, {"d_sae": 32, "init_seed": 0}, {"steps": 300, "batch_size": 32, "seed": 0}
    )
    coded = paired_shift_scores(code_flip_grams(codes, labels, pairs), n_perm=100)["score"]
    assert roc_auc(coded, truth) > 0.75 and report["fvu"] < 1.0


@pytest.mark.parametrize("arch", CAUSAL)
def test_reversal_probes_read_the_models_own_distribution(models, arch):
    """The reversal analysis's completion tools on this architecture: the log-probability of each
    single-token answer is the model's own log-softmax at the query position, and greedy completion
    picks the answer with the highest chained log-probability."""
    from interp.methods.completion import complete, target_logprob

    m = models[arch]
    tokens = _tokens(4, 8, seed=5).numpy()
    plen = np.array([3, 4, 5, 6])
    V = m.cfg.d_vocab
    lp = target_logprob(
        m, tokens, plen, np.broadcast_to(np.arange(V)[None, :, None], (4, V, 1)).copy()
    )
    with torch.no_grad():
        ref = interp.trace(m, torch.from_numpy(tokens))[0].float().log_softmax(-1)
    np.testing.assert_allclose(lp, ref[np.arange(4), plen - 1].numpy(), atol=1e-4)
    assert np.allclose(np.exp(lp).sum(1), 1.0, atol=1e-4)
    greedy = complete(m, tokens, plen, 2, batch_size=3)
    other = np.stack(
        [greedy[:, 0], (greedy[:, 1] + 1) % V], axis=1
    )  # same first token, another second
    two = target_logprob(m, tokens, plen, np.stack([greedy, other], axis=1))  # [n, 2 candidates]
    assert (two[:, 0] >= two[:, 1] - 1e-5).all()
