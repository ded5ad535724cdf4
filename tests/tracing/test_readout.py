"""Reading residual vectors through the model's own head (interp/tracing/readout.py)."""

from __future__ import annotations

import pytest
import torch
from torch import nn

import interp
from interp.tracing.readout import unembed


def test_unembed_of_the_last_residual_stream_is_the_models_logits(tiny_gpt, tokens):
    x = tokens % 50
    out, acts = interp.trace(tiny_gpt, x, capture=[tiny_gpt.hook("resid_post", -1)])
    torch.testing.assert_close(
        unembed(tiny_gpt, acts[tiny_gpt.hook("resid_post", -1)]), out, atol=1e-5, rtol=0
    )


def test_without_the_norm_it_is_the_unembedding_alone(tiny_gpt):
    r = torch.randn(3, 32)
    b = tiny_gpt.module
    direct = unembed(tiny_gpt, r, norm=False)
    torch.testing.assert_close(direct, r @ b.W_U + b.b_U, atol=1e-5, rtol=0)
    assert not direct.requires_grad


def test_a_model_without_a_head_is_a_clear_error():
    with pytest.raises(TypeError, match="needs a TransformerLens bridge with ln_final and unembed"):
        unembed(interp.wrap(nn.Linear(4, 4), model_id="lin"), torch.zeros(1, 4))
