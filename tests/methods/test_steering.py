"""Steering methods on a zoo transformer, GPT-2, GPT-NeoX and Llama-GQA (random weights):
coefficient 0 is the unsteered generation, CAA recovers a planted direction, directional
ablation removes a direction exactly, an SAE latent clamped to its own value changes nothing
(and to another value changes the output), the registry refuses a taken name."""

from __future__ import annotations

import pytest
import torch

from interp.methods import steering as S
from interp.tracing.generate import generate
from interp.tracing.trace import trace

ARCHS = ["zoo", "gpt2", "neox", "llama"]
ROWS = [[1, 5, 7, 9, 11, 3], [2, 8, 9], [4, 4, 6, 10]]


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    from interp.models.transformer import build_transformer
    from interp.tracing.model import Model
    from tests.conftest import build_spec, load_hf_models

    out = {
        "zoo": Model(
            build_transformer(build_spec(n_ctx=64)),
            backend="tl",
            kind="transformer",
            model_id="zoo",
        )
    }
    out.update(load_hf_models(tmp_path_factory.mktemp("steer_hf"), archs=("gpt2", "neox", "llama")))
    return out


def _steerings(m, coef):
    d = m.cfg.d_model
    v = torch.randn(d, generator=torch.Generator().manual_seed(1))
    return [
        S.build(m, "add", layer=1, coef=coef, vector=v),
        S.build(m, "add", layer=0, coef=coef, vector=v, where="from_last", kind="resid_post"),
        S.build(m, "actadd", layer=1, coef=coef, plus=[1, 2, 3], minus=[1, 4]),
        S.build(m, "caa", layer=1, coef=coef, pairs=[([1, 2, 3], [1, 2, 4]), ([5, 6], [5, 7])]),
    ]


@pytest.mark.parametrize("arch", ARCHS)
def test_coefficient_zero_is_unsteered_token_for_token(models, arch):
    m = models[arch]
    base = generate(m, ROWS, 8, stop_tokens=())
    for st in _steerings(m, 0.0):
        g = st.generate(m, ROWS, 8, stop_tokens=())
        assert torch.equal(g.new_tokens, base.new_tokens), st.method
        torch.testing.assert_close(g.token_logprobs, base.token_logprobs, atol=1e-5, rtol=0)
    moved = [st.generate(m, ROWS, 8, stop_tokens=()) for st in _steerings(m, 8.0)]
    assert all((g.token_logprobs - base.token_logprobs).abs().max() > 1e-3 for g in moved)


@pytest.mark.parametrize("arch", ARCHS)
def test_actadd_with_cache_equals_recompute(models, arch):
    """ActAdd adds at the first positions of each prompt: position-indexed, so under a
    key/value cache it must still land on the same absolute positions."""
    m = models[arch]
    st = S.build(m, "actadd", layer=1, coef=5.0, plus=[1, 2, 3, 4], minus=[1, 9])
    a = st.generate(m, ROWS, 8, stop_tokens=())
    b = st.generate(m, ROWS, 8, stop_tokens=(), use_cache=False)
    assert torch.equal(a.new_tokens, b.new_tokens)
    torch.testing.assert_close(a.token_logprobs, b.token_logprobs, atol=1e-4, rtol=0)


def test_caa_recovers_a_planted_direction(models):
    """Token 7's embedding is token 8's plus a planted direction u: the CAA vector over pairs
    that differ only in that last token is exactly u at the first layer's input."""
    from interp.models.transformer import build_transformer
    from interp.tracing.model import Model
    from tests.conftest import build_spec

    m = Model(
        build_transformer(build_spec(n_ctx=64)),
        backend="tl",
        kind="transformer",
        model_id="planted",
    )
    u = torch.randn(m.cfg.d_model, generator=torch.Generator().manual_seed(3))
    emb = m.module.original_model.tok_embed
    emb = getattr(emb, "original_component", emb)
    with torch.no_grad():
        emb.weight[7] = emb.weight[8] + u
    pairs = [([1, 3, 5, 7], [1, 3, 5, 8]), ([2, 7], [2, 8]), ([4, 4, 4, 4, 7], [4, 4, 4, 4, 8])]
    v0 = S.caa_vector(m, pairs, m.hook("resid_pre", 0))
    torch.testing.assert_close(v0, u, atol=1e-5, rtol=1e-5)
    v1 = S.caa_vector(m, pairs, m.hook("resid_pre", 1))
    assert torch.nn.functional.cosine_similarity(v1, u, dim=0) > 0.5  # carried through layer 0


@pytest.mark.parametrize("arch", ARCHS)
def test_directional_ablation_removes_a_planted_direction(models, arch):
    m = models[arch]
    r = torch.randn(m.cfg.d_model, generator=torch.Generator().manual_seed(2))
    plant = {m.hook("resid_pre", 0): lambda a: a + 10.0 * r / r.norm()}  # planted in the input
    st = S.build(m, "ablate", direction=r)
    names = list(st.edits)
    _, clean = trace(m, torch.tensor(ROWS[:1]), capture=names, edits=plant)
    assert max(float((clean[n] @ (r / r.norm())).abs().max()) for n in names) > 1.0
    edits = {**st.edits}
    first = names[0]
    edits[first] = lambda a: st.edits[first](plant[first](a))  # plant, then ablate
    _, acts = trace(m, torch.tensor(ROWS[:1]), capture=names, edits=edits)
    for n in names:
        assert float((acts[n] @ (r / r.norm())).abs().max()) < 1e-4, n


@pytest.mark.parametrize("arch", ["zoo", "llama"])
def test_sae_clamp_to_own_value_changes_nothing(models, arch):
    from interp.sae.model import SAE, SAEConfig

    m = models[arch]
    hook = m.hook("resid_post", 0)
    sae = SAE(SAEConfig(d_in=m.cfg.d_model, d_sae=64, hook_name=hook, init_seed=1))
    base = generate(m, ROWS, 6, stop_tokens=())

    def own(acts):
        out = acts.clone()
        out[..., 5] = acts[..., 5]
        return out

    same = S.Steering("sae_clamp", {f"{hook}.hook_sae_acts_post": own}, saes={hook: sae}).generate(
        m, ROWS, 6, stop_tokens=()
    )
    assert torch.equal(same.new_tokens, base.new_tokens)
    torch.testing.assert_close(same.token_logprobs, base.token_logprobs, atol=1e-5, rtol=0)
    clamped = S.build(m, "sae_clamp", coef=50.0, sae=sae, latent=5).generate(
        m, ROWS, 6, stop_tokens=()
    )
    added = S.build(m, "sae_add", coef=50.0, sae=sae, latent=5).generate(m, ROWS, 6, stop_tokens=())
    assert (clamped.token_logprobs - base.token_logprobs).abs().max() > 1e-3
    assert (added.token_logprobs - base.token_logprobs).abs().max() > 1e-3
    assert not m._splices  # the splice ends with the generation


def test_registry_refuses_a_taken_name_and_unknown_options():
    with pytest.raises(ValueError, match="registered twice"):
        S.register("caa")(lambda m, **kw: None)
    assert {"add", "actadd", "caa", "ablate", "sae_add", "sae_clamp"} <= set(S.names())
    with pytest.raises(KeyError):
        S.get("caaa")
    with pytest.raises(ValueError, match="where"):
        S.restrict(lambda a: a, "everywhere")


def test_side_by_side_scores_the_steered_tokens_under_both_models(models):
    m = models["gpt2"]
    st = S.build(
        m,
        "add",
        layer=1,
        coef=6.0,
        vector=torch.randn(m.cfg.d_model, generator=torch.Generator().manual_seed(4)),
    )
    sbs = S.side_by_side(m, ROWS[0], st, 6, stop_tokens=())
    assert len(sbs.tokens) == len(sbs.p_steered) == len(sbs.p_unsteered) == 6
    base = generate(m, [ROWS[0]], 6, stop_tokens=())
    steered = st.generate(m, [ROWS[0]], 6, stop_tokens=())
    assert sbs.steered == str(steered.new_tokens[0].tolist())
    # where the two completions agree so far, the unsteered score is the unsteered generation's own
    if steered.new_tokens[0, 0] == base.new_tokens[0, 0]:
        assert sbs.p_unsteered[0] == pytest.approx(float(base.token_logprobs[0, 0].exp()), rel=1e-4)
    zero = S.side_by_side(
        m,
        ROWS[0],
        S.build(m, "add", layer=1, coef=0.0, vector=torch.ones(m.cfg.d_model)),
        6,
        stop_tokens=(),
    )
    assert zero.p_steered == pytest.approx(zero.p_unsteered, rel=1e-4)


@pytest.mark.slow
def test_real_model_actadd_identities(real_model):
    """SmolLM2-135M-Instruct: ActAdd x0 is the unsteered generation; ActAdd's position-indexed
    edit gives the same tokens with the key/value cache as with the recompute."""
    m = real_model
    prompts = ["I went up to my friend and said", "Yesterday"]
    base = generate(m, prompts, 6, stop_tokens=())
    zero = S.build(
        m, "actadd", layer=6, coef=0.0, plus="I talk about weddings", minus="I do not talk"
    )
    assert torch.equal(zero.generate(m, prompts, 6, stop_tokens=()).new_tokens, base.new_tokens)
    st = S.build(
        m, "actadd", layer=6, coef=0.4, plus="I talk about weddings", minus="I do not talk"
    )
    a = st.generate(m, prompts, 6, stop_tokens=())
    b = st.generate(m, prompts, 6, stop_tokens=(), use_cache=False)
    assert torch.equal(a.new_tokens, b.new_tokens)
    assert not torch.equal(a.new_tokens, base.new_tokens)


def test_a_non_finite_coefficient_is_refused(tiny_gpt):
    from interp.methods import steering

    with pytest.raises(ValueError, match="finite"):
        steering.build(
            tiny_gpt, "add", layer=0, coef=float("nan"), vector=torch.ones(tiny_gpt.cfg.d_model)
        )
