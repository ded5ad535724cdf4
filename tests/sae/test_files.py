"""SAELens's file layout: files the real sae-lens wrote load and compute what SAELens computed;
our files round-trip exactly and look like SAELens's; what we cannot honour fails by name.

The fixtures in ``fixtures/<architecture>/`` were written by sae-lens itself
(``scripts/make_saelens_fixtures.py``; the version is in each ``versions.json``).
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from safetensors.torch import load_file, save_file

from interp.sae import KINDS, SAE, SAEConfig
from interp.sae.files import log_of_threshold

FIXTURES = Path(__file__).parent / "fixtures"
ARCHITECTURES = {"standard": "relu", "topk": "topk", "jumprelu": "jumprelu"}


def _fixture(arch: str):
    d = FIXTURES / arch
    x, f, x_hat = (
        torch.from_numpy(np.load(d / n)) for n in ("x.npy", "feature_acts.npy", "sae_out.npy")
    )
    return d, x, f, x_hat


def _ours(kind: str, input_scale: float = 0.37, seed: int = 0) -> SAE:
    """An SAE of ours with every tensor away from its init, and an input scale to fold."""
    sae = SAE(
        SAEConfig(
            d_in=8,
            d_sae=16,
            kind=kind,
            k=4,
            init_seed=seed,
            input_scale=input_scale,
            hook_name="blocks.0.hook_resid_post",
        )
    )
    g = torch.Generator().manual_seed(seed + 1)
    with torch.no_grad():
        sae.W_enc.add_(0.3 * torch.randn(8, 16, generator=g))
        sae.b_enc.copy_(0.2 * torch.randn(16, generator=g))
        sae.b_dec.copy_(torch.randn(8, generator=g))
        if kind == "jumprelu":
            sae.log_threshold.copy_(torch.randn(16, generator=g) - 2)
    return sae


@pytest.mark.parametrize("arch", sorted(ARCHITECTURES))
def test_saelens_files_load_and_compute_what_saelens_computed(arch):
    d, x, f, x_hat = _fixture(arch)
    sae = SAE.load(d)
    assert sae.cfg.kind == ARCHITECTURES[arch] and (sae.cfg.d_in, sae.cfg.d_sae) == (8, 16)
    assert sae.cfg.hook_name == "blocks.0.hook_resid_post"
    with torch.no_grad():
        ours = sae.encode(x)  # [n, d_sae]
        torch.testing.assert_close(ours, f, atol=1e-6, rtol=0)
        torch.testing.assert_close(sae.decode(ours), x_hat, atol=1e-6, rtol=0)
    assert ((ours != 0) == (f != 0)).all()  # the same latents fire
    if arch == "topk":
        assert sae.cfg.k == 4 and ((ours != 0).sum(-1) == 4).all()


def test_saelens_thresholds_are_exp_of_our_log_threshold():
    t = load_file(str(FIXTURES / "jumprelu" / "sae_weights.safetensors"))["threshold"]
    back = SAE.load(FIXTURES / "jumprelu").log_threshold.exp()
    # float32 exp cannot hit every float32: exact where it can, within a few ulps elsewhere
    ulps = (back.view(torch.int32) - t.view(torch.int32)).abs()
    assert ulps.max() <= 8 and (ulps == 0).any()
    torch.testing.assert_close(back, t, atol=0, rtol=1e-6)
    t2 = torch.exp(torch.linspace(-9, 2, 1001))  # thresholds that are exp of a float: hit exactly
    assert torch.equal(log_of_threshold(t2).exp(), t2)
    assert log_of_threshold(torch.tensor([0.0, -1.0])).exp().tolist() == [0.0, 0.0]


@pytest.mark.parametrize("kind", sorted(ARCHITECTURES.values()))
@pytest.mark.parametrize("input_scale", [1.0, 0.37])
def test_round_trip_is_exact(kind, input_scale, tmp_path):
    sae = _ours(kind, input_scale)
    x = 3 * torch.randn(50, 8, generator=torch.Generator().manual_seed(5))  # [50, d_in]
    back = SAE.load(sae.save(tmp_path / kind))
    with torch.no_grad():
        f = sae.encode(x)
        assert (f != 0).any()
        assert torch.equal(back.encode(x), f)
        assert torch.equal(back.decode(f), sae.decode(f))
    for name, tensor in sae.folded().items():
        assert torch.equal(getattr(back, name), tensor), name
    assert back.cfg.model_dump(exclude={"input_scale"}) == sae.cfg.model_dump(
        exclude={"input_scale"}
    )
    if kind == "jumprelu":
        assert torch.equal(back.log_threshold.exp(), sae.log_threshold.exp())
    again = load_file(str(back.save(tmp_path / "again") / "sae_weights.safetensors"))
    first = load_file(str(tmp_path / kind / "sae_weights.safetensors"))
    assert all(
        torch.equal(again[k], first[k]) for k in first
    )  # a second save writes the same tensors


@settings(max_examples=15, deadline=None)
@given(st.sampled_from(sorted(ARCHITECTURES.values())), st.floats(1e-3, 1e3), st.integers(0, 10**6))
def test_round_trip_is_exact_for_any_scale_and_weights(kind, input_scale, seed):
    import tempfile

    sae = _ours(kind, input_scale, seed)
    x = (
        torch.randn(20, 8, generator=torch.Generator().manual_seed(seed)) / input_scale
    )  # [20, d_in]
    with tempfile.TemporaryDirectory() as tmp:
        back = SAE.load(sae.save(tmp))
    with torch.no_grad():
        f = sae.encode(x)
        assert torch.equal(back.encode(x), f) and torch.equal(back.decode(f), sae.decode(f))


@pytest.mark.parametrize("arch", sorted(ARCHITECTURES))
def test_our_files_look_like_saelens_files(arch, tmp_path):
    ref = FIXTURES / arch
    path = _ours(ARCHITECTURES[arch]).save(tmp_path / arch)
    theirs, ours = (json.loads((p / "cfg.json").read_text()) for p in (ref, path))
    assert set(ours) == set(theirs)
    assert {k: ours[k] for k in ours if k != "metadata"} == {
        k: theirs[k] for k in theirs if k != "metadata"
    }
    # metadata is SAELens's free-form provenance; sae_lens_training_version names the sae-lens
    # that trained an SAE, so we do not write it; ours adds our training settings under "interp"
    assert set(ours["metadata"]) == set(theirs["metadata"]) - {"sae_lens_training_version"} | {
        "interp"
    }
    assert ours["metadata"]["hook_name"] == theirs["metadata"]["hook_name"]
    t_ref, t_ours = (load_file(str(p / "sae_weights.safetensors")) for p in (ref, path))
    assert set(t_ours) == set(t_ref)
    for name in t_ref:
        assert (t_ours[name].shape, t_ours[name].dtype) == (t_ref[name].shape, t_ref[name].dtype), (
            name
        )


def test_our_older_layout_still_loads(tmp_path):
    """Before SAELens's layout we wrote our SAEConfig's fields and ``log_threshold``."""
    sae = _ours("jumprelu")
    tensors = {k: v.detach().contiguous() for k, v in sae.state_dict().items()}
    save_file(tensors, str(tmp_path / "sae_weights.safetensors"))
    cfg = sae.cfg.model_dump(mode="json") | {
        "architecture": "jumprelu",
        "normalize_activations": "none",
        "activation_fn_str": "relu",
        "activation_fn_kwargs": {},
    }
    (tmp_path / "cfg.json").write_text(json.dumps(cfg))
    back = SAE.load(tmp_path)
    x = torch.randn(20, 8, generator=torch.Generator().manual_seed(1))
    assert back.cfg == sae.cfg and torch.equal(back.encode(x), sae.encode(x))


def test_pre_6_saelens_topk_layout_loads(tmp_path):
    """SAELens before 6.0: top-level hook_name, TopK as activation_fn_str + activation_fn_kwargs."""
    d = tmp_path / "old"
    shutil.copytree(FIXTURES / "topk", d)
    new = json.loads((d / "cfg.json").read_text())
    old = {
        "architecture": "standard",
        "d_in": 8,
        "d_sae": 16,
        "dtype": "float32",
        "device": "cpu",
        "model_name": "gpt2",
        "hook_name": new["metadata"]["hook_name"],
        "hook_layer": 0,
        "hook_head_index": None,
        "activation_fn_str": "topk",
        "activation_fn_kwargs": {"k": 4},
        "apply_b_dec_to_input": True,
        "finetuning_scaling_factor": False,
        "context_size": 128,
        "prepend_bos": True,
        "normalize_activations": False,
        "dataset_path": "x",
        "sae_lens_training_version": "3.0.0",
    }
    (d / "cfg.json").write_text(json.dumps(old))
    _, x, f, _ = _fixture("topk")
    sae = SAE.load(d)
    assert (
        sae.cfg.kind == "topk"
        and sae.cfg.k == 4
        and sae.cfg.hook_name == new["metadata"]["hook_name"]
    )
    torch.testing.assert_close(sae.encode(x), f, atol=1e-6, rtol=0)


def test_apply_b_dec_to_input_false_is_honoured(tmp_path):
    d = tmp_path / "no_pre_bias"
    shutil.copytree(FIXTURES / "standard", d)
    cfg = json.loads((d / "cfg.json").read_text()) | {"apply_b_dec_to_input": False}
    (d / "cfg.json").write_text(json.dumps(cfg))
    sae = SAE.load(d)
    _, x, _, _ = _fixture("standard")
    with torch.no_grad():
        assert torch.equal(sae.encode(x), torch.relu(x @ sae.W_enc + sae.b_enc))
        assert torch.equal(SAE.load(sae.save(tmp_path / "again")).encode(x), sae.encode(x))


def _edited(tmp_path: Path, arch: str, cfg_update: dict | None = None, tensors=None) -> Path:
    d = tmp_path / "edited"
    shutil.copytree(FIXTURES / arch, d)
    if cfg_update is not None:
        cfg = json.loads((d / "cfg.json").read_text()) | cfg_update
        (d / "cfg.json").write_text(json.dumps(cfg))
    if tensors is not None:
        t = load_file(str(d / "sae_weights.safetensors"))
        save_file(tensors(t), str(d / "sae_weights.safetensors"))
    return d


@pytest.mark.parametrize(
    "update, match",
    [
        (
            {"architecture": "gated"},
            r"unknown architecture 'gated'; valid: \['jumprelu', 'standard', 'topk'\]",
        ),
        (
            {"normalize_activations": "layer_norm"},
            r"normalize_activations 'layer_norm' is not supported.*valid: 'none'",
        ),
        ({"reshape_activations": "hook_z"}, r"reshape_activations 'hook_z'.*valid: 'none'"),
        ({"rescale_acts_by_decoder_norm": True}, r"rescale_acts_by_decoder_norm True"),
        (
            {"dtype": "bfloat16"},
            r"dtype 'bfloat16' is not supported; valid: \['float32', 'float64'\]",
        ),
        ({"mystery_scale": 2.0}, r"unknown field\(s\) \['mystery_scale'\]"),
        ({"k": 0}, r"topk needs a positive integer k, got 0"),
    ],
)
def test_what_we_cannot_honour_fails_by_name(tmp_path, update, match):
    with pytest.raises(ValueError, match=match):
        SAE.load(_edited(tmp_path, "topk", update))


def test_tensor_names_and_shapes_are_checked(tmp_path):
    with pytest.raises(
        ValueError, match=r"tensor W_enc has shape \[8, 15\]; d_in=8, d_sae=16 need \[8, 16\]"
    ):
        SAE.load(
            _edited(
                tmp_path / "a",
                "standard",
                tensors=lambda t: t | {"W_enc": t["W_enc"][:, :15].contiguous()},
            )
        )
    with pytest.raises(ValueError, match=r"missing \['threshold'\]"):
        SAE.load(
            _edited(
                tmp_path / "b",
                "jumprelu",
                tensors=lambda t: {k: v for k, v in t.items() if k != "threshold"},
            )
        )
    with pytest.raises(ValueError, match=r"unexpected \['log_threshold'\]"):
        SAE.load(
            _edited(
                tmp_path / "c", "standard", tensors=lambda t: t | {"log_threshold": torch.zeros(16)}
            )
        )


def test_a_kind_without_a_saelens_architecture_is_not_saved(tmp_path, monkeypatch):
    from interp.sae import model

    monkeypatch.setitem(KINDS, "mine", model._Kind(model._relu, model._l1))
    with pytest.raises(ValueError, match="kind 'mine' has no SAELens architecture"):
        SAE(SAEConfig(d_in=4, d_sae=4, kind="mine")).save(tmp_path)
    assert not (tmp_path / "cfg.json").exists()
