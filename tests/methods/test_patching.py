"""Activation and attribution patching: exact agreement where the model is linear in the
heads, first-order agreement elsewhere, batched = unbatched, and the GPT-2 code path."""

from __future__ import annotations

import pytest
import torch

import interp
from interp.methods.patching import activation_patching, attribution_patching, head_results
from interp.tracing.trace import patch_heads, trace, zero_heads
from tests.conftest import build_spec


def _model(**kw):
    from interp.models.transformer import build_transformer
    from interp.tracing.model import Model

    spec = build_spec(d_vocab=20, **kw)
    return Model(
        build_transformer(spec),
        backend="tl",
        kind="transformer",
        model_id="t",
        spec={"builder": "transformer", "spec": spec.model_dump(mode="json")},
    )


def _prompts(n=5, T=7, vocab=20, seed=0):
    g = torch.Generator().manual_seed(seed)
    clean = torch.randint(0, vocab, (n, T), generator=g)
    corrupt = clean.clone()
    corrupt[:, 1] = torch.randint(0, vocab, (n,), generator=g)
    corrupt[:, 4] = torch.randint(0, vocab, (n,), generator=g)
    return clean, corrupt


def _logit_diff(logits, idx):
    return logits[:, -1, 3] - logits[:, -1, 5]


@pytest.fixture(scope="module")
def linear_model():
    """One attention-only layer, no LayerNorm: the logit difference is linear in each hook_z."""
    return _model(n_layers=1, attn_only=True, normalization_type=None)


@pytest.fixture(scope="module")
def deep_model():
    m = _model(n_layers=2)
    for p in m.module.parameters():  # attribution must not depend on requires_grad flags
        p.requires_grad_(False)
    return m


@pytest.mark.parametrize("source", ["counterfactual", "zero", "mean"])
def test_attribution_equals_activation_patching_on_a_linear_model(linear_model, source):
    clean, corrupt = _prompts()
    kw = {"corrupt": corrupt} if source == "counterfactual" else {}
    act = activation_patching(linear_model, clean, _logit_diff, source=source, **kw)
    att = attribution_patching(linear_model, clean, _logit_diff, source=source, **kw)
    assert act.shape == (5, 1, 4) and act.abs().max() > 1e-3
    torch.testing.assert_close(att, act, atol=1e-5, rtol=1e-4)
    act_p = activation_patching(
        linear_model, clean, _logit_diff, source=source, per_position=True, **kw
    )
    att_p = attribution_patching(
        linear_model, clean, _logit_diff, source=source, per_position=True, **kw
    )
    assert act_p.shape == (5, 1, 4, 7)
    torch.testing.assert_close(att_p, act_p, atol=1e-5, rtol=1e-4)
    torch.testing.assert_close(
        act_p.sum(-1), act, atol=1e-5, rtol=1e-4
    )  # linear: position effects add up


def test_attribution_is_the_small_perturbation_limit_on_a_nonlinear_model(deep_model):
    clean, corrupt = _prompts(seed=1)
    att = attribution_patching(deep_model, clean, _logit_diff, corrupt=corrupt)
    full = activation_patching(deep_model, clean, _logit_diff, corrupt=corrupt)
    small = activation_patching(deep_model, clean, _logit_diff, corrupt=corrupt, alpha=1e-2) / 1e-2
    err_small = (small - att).abs().max() / att.abs().max()
    err_full = (full - att).abs().max() / att.abs().max()
    assert err_small < 0.02
    assert err_small < err_full  # the gap at alpha=1 is real nonlinearity, and it shrinks


def test_batched_patching_equals_one_edit_at_a_time(deep_model):
    clean, corrupt = _prompts(n=5, seed=2)
    eff = activation_patching(
        deep_model, clean, _logit_diff, corrupt=corrupt, batch_size=7
    )  # ragged chunks
    base, _ = trace(deep_model, clean)
    _, src = trace(deep_model, corrupt, capture=["blocks.1.attn.hook_z"])
    for h in (0, 3):
        out, _ = trace(
            deep_model,
            clean,
            edits={"blocks.1.attn.hook_z": patch_heads([h], src["blocks.1.attn.hook_z"])},
        )
        torch.testing.assert_close(
            eff[:, 1, h], _logit_diff(out, None) - _logit_diff(base, None), atol=1e-5, rtol=0
        )
    zero = activation_patching(deep_model, clean, _logit_diff, source="zero")
    out, _ = trace(deep_model, clean, edits={"blocks.0.attn.hook_z": zero_heads([2])})
    torch.testing.assert_close(
        zero[:, 0, 2], _logit_diff(out, None) - _logit_diff(base, None), atol=1e-5, rtol=0
    )
    same = activation_patching(deep_model, clean, _logit_diff, corrupt=clean)
    assert same.abs().max() < 1e-5  # patching from the prompt itself changes nothing


def test_head_results_sum_to_the_attention_output(deep_model):
    clean, _ = _prompts(seed=3)
    res = head_results(deep_model, clean)  # [n, layers*heads, d_model]
    assert res.shape == (5, 8, 32)
    _, acts = trace(deep_model, clean, capture=["blocks.1.hook_attn_out"])
    b_O = deep_model.module.b_O[1] if hasattr(deep_model.module, "b_O") else 0
    expected = (acts["blocks.1.hook_attn_out"] - b_O).mean(1)
    torch.testing.assert_close(res[:, 4:].sum(1), expected, atol=1e-5, rtol=1e-4)


def test_patching_on_a_gpt2_architecture_model(tmp_path):
    from transformers import GPT2Config, GPT2LMHeadModel

    from interp.data.tokenizer import word_tokenizer

    tok = word_tokenizer([f"w{i}" for i in range(20)])
    torch.manual_seed(0)
    GPT2LMHeadModel(
        GPT2Config(
            vocab_size=len(tok),
            n_embd=32,
            n_layer=2,
            n_head=4,
            n_positions=32,
            bos_token_id=0,
            eos_token_id=2,
        )
    ).eval().save_pretrained(tmp_path)
    tok.save_pretrained(tmp_path)
    m = interp.load_model(str(tmp_path))
    clean, corrupt = _prompts(n=4, vocab=len(tok), seed=4)
    att = attribution_patching(m, clean, _logit_diff, corrupt=corrupt)
    small = activation_patching(m, clean, _logit_diff, corrupt=corrupt, alpha=1e-2) / 1e-2
    assert att.shape == (4, 2, 4)
    assert (small - att).abs().max() / att.abs().max() < 0.02
    assert head_results(m, clean).shape == (4, 8, 32)
