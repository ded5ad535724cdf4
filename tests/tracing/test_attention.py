"""Attention internals for last-row recomputes: which models may rerun the last row alone, the
zoo rerun itself, and the Hugging Face caches that share a clean prefix."""

from __future__ import annotations

import pytest
import torch

from interp.tracing import attention as at
from interp.tracing.model import Model
from tests.conftest import build_spec


def _zoo(**kw) -> Model:
    from interp.models.transformer import build_transformer

    return Model(build_transformer(build_spec(**kw)), backend="tl", kind="transformer", spec={})


def test_native_refusal_names_what_the_rerun_lacks():
    assert at.native_last_row_refusal(_zoo()) is None
    assert "rotary" in at.native_last_row_refusal(_zoo(positional_embedding_type="rotary"))
    assert not any(at.attention_delegated(_zoo(), layer) for layer in range(2))


@pytest.mark.parametrize("kw", [{}, dict(attn_only=True, normalization_type=None)])
def test_rerun_last_row_reproduces_the_clean_run_and_sees_the_edit(kw):
    from interp.tracing.trace import trace

    m = _zoo(**kw)
    x = torch.randint(0, 50, (2, 9), generator=torch.Generator().manual_seed(3))
    names = [m.hook(k, layer) for layer in range(m.n_layers) for k in ("resid_pre", "k", "v")]
    logits, acts = trace(m, x, capture=names)
    keys = [acts[m.hook("k", layer)] for layer in range(m.n_layers)]
    values = [acts[m.hook("v", layer)] for layer in range(m.n_layers)]
    for start in range(m.n_layers):
        resid = acts[m.hook("resid_pre", start)][:, -1]
        same = at.rerun_last_row(m, resid, start, keys, values, lambda layer, p: p)
        assert (same - logits[:, -1]).abs().max() < 1e-5
    seen: list[int] = []

    def uniform(layer: int, p: torch.Tensor) -> torch.Tensor:
        seen.append(layer)
        return torch.full_like(p, 1.0 / p.shape[-1])

    resid = acts[m.hook("resid_pre", 0)][:, -1]
    edited = at.rerun_last_row(m, resid, 0, keys, values, uniform)
    assert seen == list(range(m.n_layers)) and (edited - logits[:, -1]).abs().max() > 1e-4


def test_shared_prefix_cache_hands_each_window_the_prefix_and_its_own_row():
    pytest.importorskip("transformers")
    B, h, P, dh, W = 2, 3, 4, 5, 3
    keys, values = torch.randn(B, h, P, dh), torch.randn(B, h, P, dh)
    kv = at.shared_prefix_cache([(keys, values)], W)
    new_k, new_v = torch.randn(W * B, h, 1, dh), torch.randn(W * B, h, 1, dh)
    k, v = kv.layers[0].update(new_k, new_v)
    assert k.shape == v.shape == (W * B, h, P + 1, dh)
    for w in range(W):
        rows = slice(w * B, (w + 1) * B)
        assert torch.equal(k[rows, :, :P], keys) and torch.equal(v[rows, :, :P], values)
        assert torch.equal(k[rows, :, P:], new_k[rows]) and torch.equal(v[rows, :, P:], new_v[rows])
    rec = at.recording_cache()
    out_k, out_v = rec.update(keys, values, 0)
    assert out_k is keys and out_v is values
    prefix = at.cached_prefix(rec)
    assert torch.equal(prefix[0][0], keys[:, :, :-1]) and torch.equal(
        prefix[0][1], values[:, :, :-1]
    )
