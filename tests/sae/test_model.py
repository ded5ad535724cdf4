"""The SAE module: a batch encodes and decodes as its rows do one by one, for every kind and
any leading dims; kinds keep their sparsity promise."""

from __future__ import annotations

import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from interp.sae import KINDS, SAE, SAEConfig


def _sae(kind: str, d_in: int, d_sae: int, seed: int) -> SAE:
    sae = SAE(
        SAEConfig(
            d_in=d_in, d_sae=d_sae, kind=kind, k=min(3, d_sae), init_seed=seed, input_scale=0.7
        )
    )
    with torch.no_grad():  # biases away from zero, so the pre-bias and thresholds matter
        g = torch.Generator().manual_seed(seed + 1)
        sae.b_enc.copy_(0.1 * torch.randn(d_sae, generator=g))
        sae.b_dec.copy_(torch.randn(d_in, generator=g))
    return sae


@settings(max_examples=30, deadline=None)
@given(
    st.sampled_from(sorted(KINDS)),
    st.integers(1, 9),
    st.integers(2, 12),
    st.integers(2, 24),
    st.integers(0, 10**6),
)
def test_batch_equals_row_by_row(kind, n, d_in, d_sae, seed):
    sae = _sae(kind, d_in, d_sae, seed)
    x = torch.randn(n, d_in, generator=torch.Generator().manual_seed(seed))  # [n, d_in]
    with torch.no_grad():
        f = sae.encode(x)  # [n, d_sae]
        rows = torch.cat([sae.encode(x[i : i + 1]) for i in range(n)])
        torch.testing.assert_close(f, rows, atol=1e-5, rtol=1e-5)
        torch.testing.assert_close(
            sae.decode(f),
            torch.cat([sae.decode(f[i : i + 1]) for i in range(n)]),
            atol=1e-5,
            rtol=1e-5,
        )
        x3 = x.repeat(2, 1).view(2, n, d_in)  # leading dims [2, n]
        torch.testing.assert_close(sae(x3), sae(x).expand(2, n, d_in), atol=1e-5, rtol=1e-5)
    assert (f >= 0).all()
    if kind == "topk":
        assert ((f != 0).sum(-1) <= 3).all()


def test_zero_codes_decode_to_the_pre_bias():
    sae = _sae("relu", 5, 7, 0)
    with torch.no_grad():
        out = sae.decode(torch.zeros(3, 7))
    torch.testing.assert_close(out, (sae.b_dec / sae.cfg.input_scale).expand(3, 5))
