"""LSTM language models with hard-wired n-gram layers (interp/models/ngram_layer.py)."""

from __future__ import annotations

import pytest
import torch

from interp.data.ngram_heads import ngram_pattern
from interp.models.ngram_layer import NgramLayer, NgramLSTM, NgramLSTMSpec, build_ngram_lstm


def test_the_fused_lstm_path_equals_the_unrolled_one():
    m = NgramLSTM(NgramLSTMSpec(d_vocab=12, d_hidden=8, n_layers=2, ngram_orders=[1, 2]))
    x = torch.randint(0, 12, (3, 10))
    fused = m(x)
    with m.hooks(
        fwd_hooks=[("blocks.0.rnn.hook_h", lambda a, hook: a)]
    ):  # a per-step hook: unrolled
        unrolled = m(x)
    torch.testing.assert_close(fused, unrolled, atol=1e-5, rtol=1e-5)


def test_an_ngram_layer_reads_the_hard_wired_pattern():
    layer = NgramLayer(4, 1)
    tokens = torch.tensor([[1, 2, 1, 2]])
    h = torch.randn(1, 4, 4)
    want = layer.W0(ngram_pattern(tokens, 1)[0] @ h[0]) + layer.W1(h[0])
    torch.testing.assert_close(layer(h, tokens)[0], want)
    A = ngram_pattern(tokens, 1)[0]
    assert A[3].tolist() == [
        0.0,
        0.0,
        1.0,
        0.0,
    ]  # after "2", the state that followed the earlier "2"


def test_the_builder_and_its_input_check():
    m = build_ngram_lstm({"d_vocab": 7, "d_hidden": 4, "ngram_orders": [1]})
    assert {
        "ngram.0.hook_pattern",
        "ngram.0.hook_out",
        "blocks.0.rnn.hook_h",
        "hook_logits",
    } <= set(m.hook_dict)
    assert m(torch.randint(0, 7, (2, 5))).shape == (2, 5, 7)
    with pytest.raises(TypeError, match="token ids"):
        m(torch.zeros(2, 5))
