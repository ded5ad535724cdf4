"""SAE trainer: FVU falls, decoder rows stay unit-norm, dead latents are resampled, files round-trip."""

from __future__ import annotations

import json

import pytest
import torch

import interp
from interp.sae import KINDS, SAE, SAEConfig, SAETrainConfig, evaluate_sae, resample_dead, train_sae


def _sparse_data(n=256, d=16, n_atoms=24, seed=0):
    """Sparse combinations of unit atoms plus a little noise: an SAE can explain it."""
    g = torch.Generator().manual_seed(seed)
    atoms = torch.randn(n_atoms, d, generator=g)
    atoms /= atoms.norm(dim=-1, keepdim=True)
    codes = (torch.rand(n, n_atoms, generator=g) < 0.1).float() * (0.5 + torch.rand(n, n_atoms, generator=g))
    return codes @ atoms + 0.01 * torch.randn(n, d, generator=g) + 0.3


@pytest.mark.parametrize("kind", sorted(KINDS))
def test_training_reduces_fvu_and_keeps_unit_norm_decoder(kind):
    x = _sparse_data()
    cfg = SAEConfig(d_in=16, d_sae=48, kind=kind, k=4)
    sparsity = {"relu": 0.02, "jumprelu": 0.001, "topk": 0.0}[kind]
    untrained = SAE(cfg.model_copy(update={"input_scale": float(1 / x.pow(2).sum(-1).mean().sqrt())}))
    before = evaluate_sae(untrained, x)["fvu"]
    sae, report = train_sae(x, cfg, SAETrainConfig(steps=300, lr=3e-3, sparsity=sparsity))
    assert report["fvu"] < 0.3 < before
    assert report["fvu"] < before / 3
    norms = sae.W_dec.norm(dim=-1)
    torch.testing.assert_close(norms, torch.ones_like(norms), atol=1e-5, rtol=0)
    assert 0 <= report["dead_frac"] <= 1 and report["l0"] > 0
    if kind == "topk":
        assert report["l0"] <= 4 + 1e-9


def test_report_matches_a_direct_computation():
    x = _sparse_data(seed=1)
    sae, report = train_sae(x, SAEConfig(d_in=16, d_sae=32), SAETrainConfig(steps=50))
    with torch.no_grad():
        f = sae.encode(x)
        fvu = ((sae.decode(f) - x) ** 2).sum() / ((x - x.mean(0)) ** 2).sum()
    assert abs(report["fvu"] - fvu.item()) < 1e-5
    assert abs(report["l0"] - (f != 0).float().sum(-1).mean().item()) < 1e-5


def test_normalise_decoder_keeps_reconstructions():
    sae = SAE(SAEConfig(d_in=8, d_sae=12, init_seed=3))
    x = torch.randn(20, 8)
    with torch.no_grad():
        sae.W_dec.mul_(torch.linspace(0.5, 3, 12)[:, None])
        before = sae(x)
    sae.normalise_decoder()
    torch.testing.assert_close(sae(x), before, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(sae.W_dec.norm(dim=-1), torch.ones(12), atol=1e-6, rtol=0)


def test_dead_latents_are_resampled_and_then_fire():
    x = _sparse_data(seed=2)
    sae = SAE(SAEConfig(d_in=16, d_sae=32))
    with torch.no_grad():
        sae.b_enc[:10] = -1e3  # ten latents that can never fire
    assert evaluate_sae(sae, x)["dead_frac"] >= 10 / 32
    n = resample_dead(sae, x, torch.Generator().manual_seed(0))
    assert n >= 10
    with torch.no_grad():
        fired = (sae.encode(x) != 0).any(0)
    assert fired[:10].all()
    torch.testing.assert_close(sae.W_dec.norm(dim=-1), torch.ones(32), atol=1e-5, rtol=0)


def test_save_load_round_trip(tmp_path):
    x = _sparse_data(seed=3)
    for kind in sorted(KINDS):
        sae, _ = train_sae(x, SAEConfig(d_in=16, d_sae=20, kind=kind), SAETrainConfig(steps=20))
        sae.save(tmp_path / kind)
        cfg = json.loads((tmp_path / kind / "cfg.json").read_text())
        assert cfg["d_in"] == 16 and cfg["d_sae"] == 20 and "architecture" in cfg
        back = SAE.load(tmp_path / kind)
        assert torch.equal(back.encode(x), sae.encode(x))


def test_trains_on_an_activation_store(tiny_gpt, tokens, tmp_path):
    store = interp.collect(tiny_gpt, tokens, hooks=["blocks.0.hook_resid_post"], out=tmp_path / "store")
    sae, report = train_sae(store, SAEConfig(d_in=32, d_sae=64), SAETrainConfig(steps=100, batch_size=32),
                            hook="blocks.0.hook_resid_post")
    assert report["n_rows"] == tokens.numel()
    assert report["fvu"] < 1.0


def test_unknown_kind_is_a_clear_error():
    with pytest.raises(KeyError, match="relu"):
        SAE(SAEConfig(d_in=4, kind="rellu"))
