"""Zoo transformers (interp/models/transformer.py): the spec's defaults and checks, and the
bridge it boots."""

from __future__ import annotations

import pytest
import torch
from pydantic import ValidationError

from interp.models.transformer import TransformerSpec, build_transformer, native_module


def test_spec_defaults_follow_the_width_and_bad_shapes_are_refused():
    spec = TransformerSpec(d_model=48, n_heads=6)
    assert spec.d_head == 8 and spec.d_mlp == 192
    with pytest.raises(ValidationError, match="not divisible by n_heads=5"):
        TransformerSpec(d_model=48, n_heads=5)
    assert TransformerSpec(d_model=48, n_heads=5, d_head=10).d_head == 10
    with pytest.raises(ValidationError):
        TransformerSpec(extra_field=1)


def test_the_seed_fixes_the_weights_and_the_bridge_matches_the_spec():
    spec = dict(n_layers=1, d_model=16, n_heads=2, n_ctx=8, d_vocab=11, init_seed=3)
    a, b, c = (
        build_transformer(spec),
        build_transformer(spec),
        build_transformer({**spec, "init_seed": 4}),
    )
    x = torch.randint(0, 11, (2, 8))
    assert torch.equal(a(x), b(x)) and not torch.equal(a(x), c(x))
    assert a(x).shape == (2, 8, 11) and a.cfg.n_layers == 1 and not a.training
    assert native_module(a) is a.original_model and native_module(x) is x


def test_a_bidirectional_model_sees_the_future():
    spec = dict(n_layers=1, d_model=16, n_heads=2, n_ctx=8, d_vocab=11, init_seed=0)
    x = torch.randint(0, 11, (1, 6))
    later = x.clone()
    later[0, -1] = (later[0, -1] + 1) % 11
    causal, bidir = (
        build_transformer(spec),
        build_transformer({**spec, "attention_dir": "bidirectional"}),
    )
    assert torch.equal(causal(x)[0, 0], causal(later)[0, 0])
    assert not torch.equal(bidir(x)[0, 0], bidir(later)[0, 0])
