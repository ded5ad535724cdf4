"""Loss recovered: 1 for an SAE that reconstructs exactly, 0 for one that outputs zeros."""

from __future__ import annotations

import math

import pytest
import torch

from interp.sae import SAE, SAEConfig
from interp.sae.metrics import loss_recovered

HOOK = "blocks.0.hook_resid_post"


def _sae(d: int, how: str) -> SAE:
    """``exact``: latents [relu(x), relu(-x)] decoded as their difference (= x); ``zero``: decodes
    0."""
    sae = SAE(SAEConfig(d_in=d, d_sae=2 * d, kind="relu", apply_b_dec_to_input=False))
    eye = torch.eye(d)
    with torch.no_grad():
        sae.W_enc.copy_(torch.cat([eye, -eye], 1))
        sae.b_enc.zero_()
        sae.b_dec.zero_()
        sae.W_dec.copy_(torch.cat([eye, -eye], 0) if how == "exact" else torch.zeros(2 * d, d))
    return sae


@pytest.mark.parametrize("how, want", [("exact", 1.0), ("zero", 0.0)])
def test_planted_saes_recover_all_or_none_of_the_loss(tiny_gpt, tokens, how, want):
    r = loss_recovered(tiny_gpt, _sae(tiny_gpt.cfg.d_model, how), HOOK, tokens, batch_size=4)
    assert r["loss_recovered"] == pytest.approx(want, abs=1e-5)
    assert r["ce_zero"] != pytest.approx(r["ce_clean"])
    assert 0 < r["l0"] <= 2 * tiny_gpt.cfg.d_model


def test_a_partial_sae_lies_between_and_batching_changes_nothing(tiny_gpt, tokens):
    sae = _sae(tiny_gpt.cfg.d_model, "exact")
    with torch.no_grad():
        sae.W_dec[: tiny_gpt.cfg.d_model // 2] = 0  # drop half of the positive directions
    a = loss_recovered(tiny_gpt, sae, HOOK, tokens, batch_size=2)
    b = loss_recovered(tiny_gpt, sae, HOOK, tokens, batch_size=64)
    assert all(math.isclose(a[k], b[k], rel_tol=1e-9, abs_tol=1e-12) for k in a)
    assert a["ce_spliced"] > a["ce_clean"]


def test_bad_inputs_are_named(tiny_gpt):
    with pytest.raises(ValueError, match="pos >= 2"):
        loss_recovered(tiny_gpt, _sae(32, "exact"), HOOK, torch.zeros(3, 1, dtype=torch.long))
    with pytest.raises(KeyError, match="hook name"):
        loss_recovered(
            tiny_gpt,
            _sae(32, "exact"),
            "blocks.0.hook_resid_pots",
            torch.zeros(3, 4, dtype=torch.long),
        )


def test_latent_stats_of_planted_saes_and_chunking():
    from interp.sae.metrics import latent_stats

    x = torch.randn(40, 6, generator=torch.Generator().manual_seed(0)).abs() + 0.5
    exact = latent_stats(_sae(6, "exact"), [x[:13], x[13:]], dense_above=0.9)
    assert exact["fvu"] == pytest.approx(0.0, abs=1e-10) and exact["n_rows"] == 40
    whole = latent_stats(_sae(6, "exact"), [x], dense_above=0.9)
    assert all(
        whole[k] == pytest.approx(exact[k]) for k in ("fvu", "l0", "dead_frac", "dense_frac")
    )
    # x > 0 everywhere: the relu(x) latents fire on every row (dense), the relu(-x) ones never
    # (dead)
    assert exact["dead_frac"] == 0.5 and exact["dense_frac"] == 0.5 and exact["l0"] == 6
    zero = latent_stats(
        _sae(6, "zero"), [x]
    )  # reconstructs 0: error |x|^2 exceeds the variance about the mean
    assert zero["fvu"] == pytest.approx(
        float(x.pow(2).sum() / (x - x.mean(0)).pow(2).sum()), rel=1e-6
    )


@pytest.mark.parametrize("how, want", [("exact", 1.0), ("zero", 0.0)])
def test_planted_saes_from_a_later_position(tiny_gpt, tokens, how, want):
    """With ``first_position`` the SAE (and the ablation) act from that position on: the planted
    SAEs still recover all or none of the loss, the clean loss is the same, and the zero-ablated
    loss moves (the first positions stay clean)."""
    sae = _sae(tiny_gpt.cfg.d_model, how)
    every = loss_recovered(tiny_gpt, sae, HOOK, tokens, batch_size=4)
    later = loss_recovered(tiny_gpt, sae, HOOK, tokens, batch_size=4, first_position=2)
    assert later["loss_recovered"] == pytest.approx(want, abs=1e-5)
    assert later["ce_clean"] == pytest.approx(every["ce_clean"], rel=1e-9)
    assert later["ce_zero"] != pytest.approx(every["ce_zero"])
    with pytest.raises(ValueError, match="first_position"):
        loss_recovered(tiny_gpt, sae, HOOK, tokens, first_position=tokens.shape[1])


def test_sink_positions_stay_clean(tiny_gpt, tokens):
    """``max_norm``: positions above it are left clean by both edits. Below every position's
    norm, the zero SAE and the ablation change nothing (spliced = zero-ablated = clean loss); above
    every norm, the result is the plain ``first_position`` one; in between, the planted exact SAE
    still recovers all of the loss."""
    from interp import trace

    _, acts = trace(tiny_gpt, tokens, capture=[HOOK])
    norms = acts[HOOK].norm(dim=-1)[:, 1:]
    zero = _sae(tiny_gpt.cfg.d_model, "zero")
    all_sinks = loss_recovered(
        tiny_gpt, zero, HOOK, tokens, first_position=1, max_norm=float(norms.min()) / 2
    )
    assert all_sinks["ce_spliced"] == pytest.approx(all_sinks["ce_clean"], rel=1e-6)
    assert all_sinks["ce_zero"] == pytest.approx(all_sinks["ce_clean"], rel=1e-6)
    assert math.isnan(all_sinks["l0"])
    plain = loss_recovered(tiny_gpt, zero, HOOK, tokens, first_position=1)
    no_sinks = loss_recovered(
        tiny_gpt, zero, HOOK, tokens, first_position=1, max_norm=float(norms.max()) * 2
    )
    assert all(no_sinks[k] == pytest.approx(plain[k], rel=1e-9) for k in plain)
    half = float(norms.median())
    some = loss_recovered(tiny_gpt, zero, HOOK, tokens, first_position=1, max_norm=half)
    # half the positions ablated: a loss of its own, neither clean nor every position's
    assert some["ce_zero"] != pytest.approx(plain["ce_zero"])
    assert some["ce_zero"] != pytest.approx(some["ce_clean"])
    exact = loss_recovered(
        tiny_gpt,
        _sae(tiny_gpt.cfg.d_model, "exact"),
        HOOK,
        tokens,
        first_position=1,
        max_norm=half,
    )
    assert exact["loss_recovered"] == pytest.approx(1.0, abs=1e-5)
    with pytest.raises(ValueError, match="max_norm"):
        loss_recovered(tiny_gpt, zero, HOOK, tokens, max_norm=0.0)
