"""Feature pages against direct dense computations on a tiny model's sharded store: densities,
histograms, brute-force top-k contexts, a planted one-token latent, boundary invariance, logit
effects, save/load, and a pass that never reads the whole store."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import interp
from interp.sae.features import FeaturePages, dense_density, feature_pages, has_feature_pages
from interp.sae.model import SAE, SAEConfig
from interp.tracing.store import ActivationStore

N, T, D_SAE, K, CONTEXT = 12, 10, 24, 5, 3


@pytest.fixture
def setup(tiny_gpt, tmp_path):
    hook = tiny_gpt.hook("resid_post", 0)
    x = torch.randint(0, 50, (N, T), generator=torch.Generator().manual_seed(0))
    store = interp.collect(tiny_gpt, x, [hook], batch_size=4, out=tmp_path / "store", shard_size=5)
    assert len(store.manifest.arrays[hook].shards) == 3
    sae = SAE(SAEConfig(d_in=tiny_gpt.cfg.d_model, d_sae=D_SAE, init_seed=0))
    with torch.no_grad():  # a negative bias so that latents are sparse but not dead
        sae.b_enc.fill_(-0.3)
    return tiny_gpt, store, hook, sae


def _dense(store, hook, sae):
    acts = torch.cat(
        [t for _, _, t in store.iter_shards(hook)]
    )  # [N, T, d] (the test may read it all)
    with torch.no_grad():
        return sae.encode(acts)  # [N, T, d_sae]


def test_density_and_histogram_equal_a_dense_computation(setup):
    m, store, hook, sae = setup
    pages = feature_pages(sae, store, hook, k=K, context=CONTEXT, batch_size=3)
    f = _dense(store, hook, sae).reshape(-1, D_SAE)
    np.testing.assert_allclose(pages.density, (f > 0).double().mean(0).numpy())
    np.testing.assert_allclose(
        pages.density, dense_density(sae, torch.cat([t for _, _, t in store.iter_shards(hook)]))
    )
    assert 0 < pages.density.mean() < 1 and pages.n_tokens == N * T
    want = np.stack(
        [
            np.histogram(
                np.clip(f[:, i][f[:, i] > 0].numpy(), pages.hist_edges[0], pages.hist_edges[-1]),
                pages.hist_edges,
            )[0]
            for i in range(D_SAE)
        ]
    )
    np.testing.assert_array_equal(pages.hist_counts, want)
    np.testing.assert_array_equal(pages.hist_counts.sum(1), (f > 0).sum(0).numpy())


def test_top_contexts_equal_a_brute_force_argsort(setup):
    m, store, hook, sae = setup
    pages = feature_pages(sae, store, hook, k=K, context=CONTEXT, batch_size=2)
    f = _dense(store, hook, sae)  # [N, T, d_sae]
    toks = store.tokens
    for i in range(D_SAE):
        col = f[..., i].reshape(-1)  # [N * T]
        order = np.argsort(-col.numpy(), kind="stable")[:K]
        order = order[col.numpy()[order] > 0]
        got = pages.top_items[i] * T + pages.top_pos[i]
        np.testing.assert_array_equal(got[: len(order)], order)
        assert (pages.top_items[i, len(order) :] == -1).all()
        np.testing.assert_allclose(
            pages.top_acts[i, : len(order)], col[order].numpy(), rtol=1e-5, atol=1e-6
        )
        for j, flat in enumerate(order):
            n, p = divmod(int(flat), T)
            for w, q in enumerate(range(p - CONTEXT, p + CONTEXT + 1)):
                inside = 0 <= q < T
                assert pages.ctx_tokens[i, j, w] == (int(toks[n, q]) if inside else -1)
                assert pages.ctx_acts[i, j, w] == pytest.approx(
                    float(f[n, q, i]) if inside else 0.0, abs=1e-5
                )


def test_a_planted_one_token_latent_finds_exactly_its_positions(tiny_gpt, tmp_path):
    hook = tiny_gpt.hook("embed")  # token embedding only: a direction picks out one token id
    x = torch.randint(0, 50, (N, T), generator=torch.Generator().manual_seed(1))
    store = interp.collect(tiny_gpt, x, [hook], batch_size=4, out=tmp_path / "s", shard_size=4)
    target = int(x[3, 4])
    sae = SAE(SAEConfig(d_in=tiny_gpt.cfg.d_model, d_sae=4, apply_b_dec_to_input=False))
    e = torch.cat([t for _, _, t in store.iter_shards(hook)]).reshape(-1, tiny_gpt.cfg.d_model)
    w = e[(x.reshape(-1) == target).nonzero()[0, 0]]
    scores = e @ w  # the target's rows score |w|^2; threshold halfway to the best other score
    thr = 0.5 * (scores[x.reshape(-1) == target].min() + scores[x.reshape(-1) != target].max())
    with torch.no_grad():
        sae.W_enc[:, 0] = w
        sae.b_enc[0] = -thr
        sae.b_enc[1:] = -1e6  # the others never fire
    pages = feature_pages(sae, store, hook, k=40, context=2, batch_size=5)
    where = {tuple(nt) for nt in (x == target).nonzero().tolist()}
    got = {
        (int(n), int(p))
        for n, p in zip(pages.top_items[0], pages.top_pos[0], strict=True)
        if n >= 0
    }
    assert got == where and len(where) >= 2
    assert (
        pages.density[0] == pytest.approx(len(where) / (N * T)) and (pages.density[1:] == 0).all()
    )
    assert (pages.ctx_tokens[0, : len(where), 2] == target).all()  # the middle of every window


def test_shard_and_batch_boundaries_do_not_change_the_pages(setup, tmp_path):
    m, store, hook, sae = setup
    a = feature_pages(sae, store, hook, k=K, context=CONTEXT, batch_size=1)
    b = feature_pages(sae, store, hook, k=K, context=CONTEXT, batch_size=100)
    resharded = store.save(tmp_path / "resharded", shard_size=N)  # one shard
    c = feature_pages(sae, resharded, hook, k=K, context=CONTEXT, batch_size=7)
    for other in (b, c):
        for name in ("density", "hist_counts", "top_items", "top_pos", "ctx_tokens"):
            np.testing.assert_array_equal(getattr(a, name), getattr(other, name), err_msg=name)
        np.testing.assert_allclose(a.top_acts, other.top_acts, rtol=1e-5, atol=1e-6)
        np.testing.assert_allclose(a.ctx_acts, other.ctx_acts, rtol=1e-5, atol=1e-6)


def test_logit_effects_equal_w_dec_times_w_u(setup):
    m, store, hook, sae = setup
    pages = feature_pages(
        sae, store, hook, model=m, k=2, context=1, n_logit_tokens=6, tokenizer=lambda i: f"tok{i}"
    )
    effects = sae.W_dec.detach() @ m.module.W_U.detach()  # [d_sae, d_vocab]
    order = torch.argsort(effects, dim=1, descending=True)
    np.testing.assert_array_equal(pages.promoted, order[:, :6].numpy())
    np.testing.assert_array_equal(pages.suppressed, order.flip(1)[:, :6].numpy())
    np.testing.assert_allclose(
        pages.promoted_values, effects.gather(1, order[:, :6]).numpy(), rtol=1e-5, atol=1e-6
    )
    assert pages.token_str(int(pages.promoted[0, 0])) == f"tok{int(pages.promoted[0, 0])}"
    # Search by a promoted token's string finds the latent; by id, the id.
    hits = pages.search(f"tok{int(pages.promoted[5, 0])}")
    assert 5 in hits and pages.search("7") == [7] and pages.search("999") == []


def test_logit_effects_through_unembed_match_w_u(setup):
    from interp.sae.features import logit_effects

    m, store, hook, sae = setup
    w_u = m.module.W_U

    class NoWU:  # a bridge reached only through unembed (the lens's path), b_U included there
        module = type("M", (), {"unembed": m.module.unembed, "ln_final": m.module.ln_final})()

    with torch.no_grad():
        want = sae.W_dec @ w_u
    torch.testing.assert_close(logit_effects(sae, NoWU()), want, rtol=1e-5, atol=1e-5)


def test_without_a_model_logit_effects_are_skipped_with_a_note(setup):
    m, store, hook, sae = setup
    pages = feature_pages(sae, store, hook, k=2, context=1)
    assert pages.promoted.shape == (D_SAE, 0) and "no model" in pages.note
    assert pages.search("tok1") == []


def test_pages_save_and_load_through_a_result(setup, tmp_path):
    m, store, hook, sae = setup
    pages = feature_pages(
        sae, store, hook, model=m, k=3, context=2, tokenizer=[f"t{i}" for i in range(50)]
    )
    result = pages.to_result()
    assert has_feature_pages(result) and result.metrics["features"]["d_sae"] == D_SAE
    back = FeaturePages.from_result(interp.Result.load(result.save(tmp_path / "run")))
    assert back == pages
    assert FeaturePages.load(pages.save(tmp_path / "run2")) == pages
    ctx = back.contexts(0)
    assert ctx and ctx[0]["strings"][ctx[0]["center"]] == back.token_str(
        ctx[0]["tokens"][ctx[0]["center"]]
    )


def test_the_pass_never_reads_the_whole_store(setup, monkeypatch):
    m, store, hook, sae = setup
    want = feature_pages(sae, store, hook, k=K, context=CONTEXT)

    def refuse(self, name):
        raise AssertionError("feature_pages read the whole store")

    monkeypatch.setattr(ActivationStore, "__getitem__", refuse)
    monkeypatch.setattr(torch, "cat", _no_big_cat(store, hook))
    got = feature_pages(sae, ActivationStore.open(store.path), hook, k=K, context=CONTEXT)
    assert got == want


def _no_big_cat(store, hook):
    """``torch.cat`` that refuses to build anything as large as the stored activations."""
    real = torch.cat
    limit = N * int(np.prod(store.manifest.arrays[hook].shape))  # N * T * d

    def cat(tensors, *args, **kwargs):
        out = real(tensors, *args, **kwargs)
        assert out.numel() < limit, f"concatenated {out.numel()} elements (the store has {limit})"
        return out

    return cat


def test_other_positions_are_refused(tiny_gpt):
    hook = tiny_gpt.hook("resid_post", 0)
    x = torch.randint(0, 50, (4, 6), generator=torch.Generator().manual_seed(0))
    store = interp.collect(tiny_gpt, x, [hook], positions="last")
    sae = SAE(SAEConfig(d_in=tiny_gpt.cfg.d_model, d_sae=8))
    with pytest.raises(ValueError, match="positions='all'"):
        feature_pages(sae, store, hook)
